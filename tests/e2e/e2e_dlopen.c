/* Loads argv[1] (libe2e_plugin.so), leaks 77777 bytes allocated inside it,
 * closes it, loads it again and leaks 88888 more: both sites must resolve
 * to e2e_plugin_alloc in the plugin, though the first was closed. */
#include <dlfcn.h>
#include <stdlib.h>

typedef void *(*alloc_fn)(size_t);

static int use_plugin(const char *path, size_t n, int close_after)
{
    void *h = dlopen(path, RTLD_NOW);
    if (!h)
        return 1;
    alloc_fn f = (alloc_fn)dlsym(h, "e2e_plugin_alloc");
    if (!f || !f(n))
        return 1;
    if (close_after && dlclose(h) != 0)
        return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (use_plugin(argv[1], 77777, 1) || use_plugin(argv[1], 88888, 0))
        return 1;
    return 0;
}
