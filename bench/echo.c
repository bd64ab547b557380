/* echo.c: the Python client's floor for bench/python_bench.py: a C server on a Unix socket
 * that writes back whatever it reads, one connection at a time, blocking. Not installed. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "usage: echo SOCKET\n");
        return 2;
    }
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, argv[1]);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1)) {
        perror("echo");
        return 1;
    }
    for (;;) {
        int c = accept(l, 0, 0);
        if (c < 0) continue;
        char buf[4096];
        ssize_t n;
        while ((n = read(c, buf, sizeof buf)) > 0) {
            ssize_t off = 0;
            while (off < n) {
                ssize_t w = write(c, buf + off, n - off);
                if (w <= 0) break;
                off += w;
            }
        }
        close(c);
    }
}
