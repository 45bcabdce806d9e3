/* A known peak: 1,000,000 + 2,000,000 bytes live at once = 3,000,000; one
 * block of 12,345 bytes leaks; exits with code 3. No stdio (its buffer
 * would be one more allocation). */
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *a = malloc(1000000);
    char *b = malloc(2000000);
    memset(a, 1, 1000000);
    memset(b, 2, 2000000);
    free(a);
    char *c = malloc(500000);
    memset(c, 3, 500000);
    free(b);
    free(c);
    char *leak = malloc(12345);
    leak[0] = 1;
    return 3;
}
