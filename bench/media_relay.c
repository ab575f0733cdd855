/*
 * The reference relay of the media benchmark (bench/media.py): what this machine can do
 * when forwarding RTP costs nothing but system calls.
 *
 * One thread, one epoll set (level-triggered), and for each socket that is readable one
 * recvmmsg(2) that takes up to BATCH datagrams and one sendmmsg(2) that sends them all on
 * from the other socket of the pair. Each side's destination starts as the port it was
 * given and is latched to the source of the first datagram received from that side
 * (symmetric RTP, RFC 4961), as the gateway's relay does. Nothing is counted, parsed or
 * rewritten: datagrams cross byte for byte. No RTCP socket is bound.
 *
 * Control on standard input, one command a line, answered on standard output:
 *   pair DEST_A DEST_B   bind two sockets on 127.0.0.1 (the one facing side A, then the
 *                        one facing side B); packets from A go to 127.0.0.1:DEST_B and
 *                        packets from B to 127.0.0.1:DEST_A; answers "PORT_A PORT_B"
 *   quit                 (or end of input) exit
 * It prints "ready" once it listens for commands.
 *
 * Built by the harness: gcc -O2 -o media_relay media_relay.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 32
#define MAX_DATAGRAM 2048
#define STDIN_TAG 0xFFFFFFFFu

struct side {
    int fd;
    struct sockaddr_in dest; /* where this side's media goes */
    int latched;
};

static struct side *sides; /* 2 * pairs: side A of pair i at 2i, side B at 2i + 1 */
static size_t side_count, side_cap;
static int epfd;

static unsigned char buffers[BATCH][MAX_DATAGRAM];
static struct iovec rx_iov[BATCH], tx_iov[BATCH];
static struct mmsghdr rx_msgs[BATCH], tx_msgs[BATCH];
static struct sockaddr_in sources[BATCH];

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int bind_socket(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int local_port(int fd) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) < 0) return -1;
    return ntohs(a.sin_port);
}

static int add_pair(int dest_a, int dest_b, int *port_a, int *port_b) {
    if (side_count + 2 > side_cap) {
        side_cap = side_cap ? side_cap * 2 : 256;
        sides = realloc(sides, side_cap * sizeof *sides);
        if (!sides) die("realloc");
    }
    int dests[2] = {dest_a, dest_b};
    for (int k = 0; k < 2; k++) {
        struct side *s = &sides[side_count + k];
        s->fd = bind_socket();
        if (s->fd < 0) return -1;
        memset(&s->dest, 0, sizeof s->dest);
        s->dest.sin_family = AF_INET;
        s->dest.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        s->dest.sin_port = htons((unsigned short)dests[k]);
        s->latched = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)(side_count + k)};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0) return -1;
    }
    *port_a = local_port(sides[side_count].fd);
    *port_b = local_port(sides[side_count + 1].fd);
    side_count += 2;
    return 0;
}

/* Drain one socket: each batch received from side i is sent on to the other side. */
static void relay(unsigned i) {
    struct side *src = &sides[i], *dst = &sides[i ^ 1u];
    for (;;) {
        for (int k = 0; k < BATCH; k++) rx_msgs[k].msg_hdr.msg_namelen = sizeof sources[k];
        int n = recvmmsg(src->fd, rx_msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) return;
        if (!src->latched) {
            src->dest = sources[0];
            src->latched = 1;
        }
        for (int k = 0; k < n; k++) {
            tx_iov[k].iov_len = rx_msgs[k].msg_len;
            tx_msgs[k].msg_hdr.msg_name = &dst->dest;
            tx_msgs[k].msg_hdr.msg_namelen = sizeof dst->dest;
        }
        int sent = 0;
        while (sent < n) {
            int m = sendmmsg(dst->fd, tx_msgs + sent, (unsigned)(n - sent), 0);
            if (m <= 0) break; /* a full buffer drops the rest, as the network would */
            sent += m;
        }
        if (n < BATCH) return; /* the socket is empty: no call that finds nothing */
    }
}

static int command(char *line) {
    int a, b, pa, pb;
    if (sscanf(line, "pair %d %d", &a, &b) == 2) {
        if (add_pair(a, b, &pa, &pb) < 0) {
            printf("error %s\n", strerror(errno));
        } else {
            printf("%d %d\n", pa, pb);
        }
        fflush(stdout);
        return 1;
    }
    return strncmp(line, "quit", 4) != 0;
}

int main(void) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    for (int k = 0; k < BATCH; k++) {
        rx_iov[k] = (struct iovec){.iov_base = buffers[k], .iov_len = MAX_DATAGRAM};
        tx_iov[k] = (struct iovec){.iov_base = buffers[k], .iov_len = 0};
        rx_msgs[k].msg_hdr = (struct msghdr){
            .msg_name = &sources[k], .msg_namelen = sizeof sources[k],
            .msg_iov = &rx_iov[k], .msg_iovlen = 1};
        tx_msgs[k].msg_hdr = (struct msghdr){.msg_iov = &tx_iov[k], .msg_iovlen = 1};
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = STDIN_TAG};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, STDIN_FILENO, &ev) < 0) die("epoll_ctl stdin");

    char line[256];
    size_t used = 0;
    printf("ready\n");
    fflush(stdout);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(epfd, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            unsigned tag = events[k].data.u32;
            if (tag != STDIN_TAG) {
                relay(tag);
                continue;
            }
            ssize_t got = read(STDIN_FILENO, line + used, sizeof line - 1 - used);
            if (got <= 0) return 0;
            used += (size_t)got;
            line[used] = '\0';
            char *nl;
            while ((nl = strchr(line, '\n')) != NULL) {
                *nl = '\0';
                if (!command(line)) return 0;
                size_t rest = used - (size_t)(nl + 1 - line);
                memmove(line, nl + 1, rest);
                used = rest;
                line[used] = '\0';
            }
            if (used >= sizeof line - 1) used = 0; /* an overlong line is dropped */
        }
    }
}
