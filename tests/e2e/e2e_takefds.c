/* Takes over every descriptor number it did not open, as a daemon does, and
 * then allocates with stacks of many shapes: libunwind 1.6 validates the
 * memory it reads while unwinding a frame it has not seen (a new call
 * site, a new thread, code without CFI) by writing a byte of it into a
 * pipe of its own, whose numbers this program now owns (docs/shim.md,
 * "libunwind's descriptors").
 *
 *   e2e_takefds block   every number 3..1023 becomes one end of a blocking
 *                       socketpair: a read there never returns
 *   e2e_takefds mixed   even numbers one end of a socketpair that times
 *                       out reads after 300 ms, odd ones the write end of
 *                       a pipe, where a read fails (libunwind then closes
 *                       both its numbers and makes a new pipe)
 *
 * Only the analyzer's connection is spared (the socket whose peer is
 * $MLMEM_SOCKET; e2e_closefds takes that one too), so the figures can be
 * exact. Each site below allocates four blocks of its own size and frees
 * three. Exits 3 if a number it took was closed or now names something
 * else, 4 if anything was written into its socketpair or pipe, 0 if not.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#define MAX_FD 1024

static struct stat taken[MAX_FD]; /* what each number was made to name */
static int is_taken[MAX_FD];

/* Four blocks of 'size', three freed: one leaked block per site. */
__attribute__((noinline)) static void site(size_t size)
{
    void *p[4];
    for (int i = 0; i < 4; i++)
        p[i] = malloc(size);
    for (int i = 1; i < 4; i++)
        free(p[i]);
    memset(p[0], 1, size);
}

__attribute__((noinline)) static void descend(int depth, size_t size)
{
    if (depth == 0)
        site(size);
    else
        descend(depth - 1, size);
    __asm__ volatile("" ::: "memory"); /* not a tail call */
}

__attribute__((noinline)) static void through_pointer(size_t size)
{
    site(size);
}

static void *thread_main(void *arg)
{
    (void)arg;
    descend(3, 3001);
    return NULL;
}

#if defined(__x86_64__)
/* A function without CFI (no .cfi directives, so no FDE in .eh_frame): the
 * unwinder's DWARF step fails here and it guesses from the frame pointer,
 * validating everything it reads. It calls site(4001). */
void nocfi_alloc(void);
__asm__(".text\n"
        ".globl nocfi_alloc\n"
        ".type nocfi_alloc, @function\n"
        "nocfi_alloc:\n"
        "  push %rbp\n"
        "  mov %rsp, %rbp\n"
        "  mov $4001, %edi\n"
        "  call site_4001\n"
        "  pop %rbp\n"
        "  ret\n"
        ".size nocfi_alloc, .-nocfi_alloc\n");
__attribute__((noinline, used)) void site_4001(size_t size)
{
    site(size);
}
#endif

/* Non-zero if 'fd' is the analyzer's connection (its peer is $MLMEM_SOCKET). */
static int is_analyzer(int fd)
{
    const char *path = getenv("MLMEM_SOCKET");
    struct sockaddr_un peer;
    socklen_t len = sizeof peer;
    memset(&peer, 0, sizeof peer);
    if (!path || getpeername(fd, (struct sockaddr *)&peer, &len) != 0 ||
        peer.sun_family != AF_UNIX)
        return 0;
    return strncmp(peer.sun_path, path, sizeof peer.sun_path) == 0;
}

static void take(int fd, int from)
{
    if (dup2(from, fd) == fd) {
        fstat(fd, &taken[fd]);
        is_taken[fd] = 1;
    }
}

int main(int argc, char **argv)
{
    int mixed = argc > 1 && strcmp(argv[1], "mixed") == 0;
    int sv[2], pp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || pipe(pp) != 0)
        return 2;
    if (mixed) {
        struct timeval tv = {0, 300 * 1000};
        setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    for (int fd = 3; fd < MAX_FD; fd++) {
        if (fd == sv[0] || fd == sv[1] || fd == pp[0] || fd == pp[1] || is_analyzer(fd))
            continue;
        take(fd, mixed && (fd & 1) ? pp[1] : sv[0]);
    }

    /* Stacks of every shape, each a call site libunwind has not seen. */
    site(1001);
    descend(5, 1005);
    descend(40, 1040);
    void (*volatile fp)(size_t) = through_pointer;
    fp(2001);
    pthread_t t;
    if (pthread_create(&t, NULL, thread_main, NULL) != 0 || pthread_join(t, NULL) != 0)
        return 2;
#if defined(__x86_64__)
    nocfi_alloc();
#else
    site(4001);
#endif

    for (int fd = 3; fd < MAX_FD; fd++) {
        struct stat st;
        if (is_taken[fd] && (fstat(fd, &st) != 0 || st.st_ino != taken[fd].st_ino ||
                             st.st_dev != taken[fd].st_dev)) {
            static const char msg[] = "e2e_takefds: a descriptor was closed or replaced\n";
            write(2, msg, sizeof msg - 1);
            return 3;
        }
    }
    char buf[64];
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    fcntl(pp[0], F_SETFL, O_NONBLOCK);
    if (read(sv[1], buf, sizeof buf) > 0 || read(pp[0], buf, sizeof buf) > 0) {
        static const char msg[] = "e2e_takefds: something wrote into the program's descriptors\n";
        write(2, msg, sizeof msg - 1);
        return 4;
    }
    return 0;
}
