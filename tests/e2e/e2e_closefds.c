/* Replaces every descriptor it did not open (as daemons and some launchers
 * close them) by one end of its own socketpair, on every number up to 1023,
 * so whichever number the shim's socket had now names the program's
 * socket, and waits 200 ms, during which the shim's
 * writer has RSS samples to send. The profiler must never write into the
 * program's socket: exits 1 if the other end received anything.
 * (It allocates nothing meanwhile; e2e_takefds is the program that takes
 * the numbers and then allocates with stacks.) */
#include <fcntl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 2;
    /* dup2 closes and reuses each number in one step: there is no moment
     * when the shim's number is simply closed. */
    for (int fd = 3; fd < 1024; fd++)
        if (fd != sv[0] && fd != sv[1])
            dup2(sv[0], fd);
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    char buf[64];
    return read(sv[1], buf, sizeof buf) > 0 ? 1 : 0;
}
