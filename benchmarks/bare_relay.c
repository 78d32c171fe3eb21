/* The floor for benchmarks/proxy_rtt.py: a unix socket relay in C doing nothing but forwarding bytes.
 *
 * bare_relay LISTEN CONNECT [SPIN_US]: for each connection accepted on LISTEN, connect to CONNECT and
 * copy bytes both ways on one thread per connection with epoll (the shape of vutrace's proxy), no
 * framing, no FDs, no recording. Whatever a relay costs beyond this is the relay's own work.
 * With SPIN_US, each thread busy-polls (epoll_wait with timeout 0) for up to SPIN_US microseconds
 * before it blocks, so a reply that comes within that time finds the relay awake.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long spin_ns;

static long now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000000000L + now.tv_nsec;
}

static int wait_event(int ep, struct epoll_event *ev) {
    for (long until = now_ns() + spin_ns; spin_ns && now_ns() < until;)
        if (epoll_wait(ep, ev, 1, 0) == 1) return 1;
    return epoll_wait(ep, ev, 1, -1);
}

struct pair { int fd[2]; };

static int send_all(int fd, const char *buf, ssize_t len) {
    while (len > 0) {
        ssize_t sent = send(fd, buf, len, MSG_NOSIGNAL);
        if (sent <= 0) return -1;
        buf += sent;
        len -= sent;
    }
    return 0;
}

static void *relay(void *arg) {
    struct pair *p = arg;
    static __thread char buf[65536];
    int ep = epoll_create1(0);
    for (int i = 0; i < 2; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, p->fd[i], &ev);
    }
    for (;;) {
        struct epoll_event ev;
        if (wait_event(ep, &ev) != 1) continue;
        int i = ev.data.u32;
        ssize_t n = recv(p->fd[i], buf, sizeof buf, 0);
        if (n <= 0 || send_all(p->fd[1 - i], buf, n) < 0) break;
    }
    close(p->fd[0]);
    close(p->fd[1]);
    close(ep);
    free(p);
    return NULL;
}

static void unix_address(struct sockaddr_un *addr, const char *path) {
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    strncpy(addr->sun_path, path, sizeof addr->sun_path - 1);
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s LISTEN CONNECT [SPIN_US]\n", argv[0]);
        return 2;
    }
    spin_ns = argc == 4 ? atol(argv[3]) * 1000 : 0;
    struct sockaddr_un listen_addr, connect_addr;
    unix_address(&listen_addr, argv[1]);
    unix_address(&connect_addr, argv[2]);
    int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    unlink(argv[1]);
    if (bind(listener, (struct sockaddr *)&listen_addr, sizeof listen_addr) || listen(listener, 16)) {
        perror("listen");
        return 1;
    }
    for (;;) {
        int accepted = accept(listener, NULL, NULL);
        if (accepted < 0) continue;
        int other = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(other, (struct sockaddr *)&connect_addr, sizeof connect_addr)) {
            perror("connect");
            close(accepted);
            close(other);
            continue;
        }
        struct pair *p = malloc(sizeof *p);
        p->fd[0] = accepted;
        p->fd[1] = other;
        pthread_t thread;
        pthread_create(&thread, NULL, relay, p);
        pthread_detach(thread);
    }
}
