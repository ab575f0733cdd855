/*
 * The load generator of the media benchmark (bench/media.py): both ends of N calls.
 *
 * Every stream (one m= line of a call) has two directions: side A sends to the relay port
 * facing A and side B receives what the relay sends on, and the reverse. All side-A
 * traffic leaves from and returns to one socket on 127.0.0.1 and all side-B traffic
 * another, so that the generator sends with one sendmmsg(2) per batch (each datagram to
 * its own stream's relay port) and receives with recvmmsg(2): its own cost per packet
 * stays well under an engine's, and it can load the C reference relay too. Each
 * direction sends paced RTP packets (RFC 3550 5.1 header: sequence number, timestamp at
 * the stream's clock rate, SSRC; audio as PCMU, video as a dynamic type) whose payload
 * carries the step, the direction, a sequence number, the send time and a checksum of the
 * datagram (all but the send time and the checksum itself), so the receiving side counts
 * distinct packets (loss), duplicates and damaged ones, and the one-way delay from the
 * send time to the kernel's receive timestamp (SO_TIMESTAMPNS, the same CLOCK_REALTIME).
 * Interarrival jitter is RFC 3550 A.8's estimator, J += (|D| - J) / 16, on the transit
 * times in nanoseconds. Packets due within one tick (TICK_NS) leave together.
 *
 * Control on standard input, one command a line, answered on standard output:
 *   bind N            add N more streams; answers "PORT_A PORT_B ..." (2N numbers: the
 *                     two shared sockets' ports, once per stream)
 *   target S RA RB K  stream S sends side A's packets to 127.0.0.1:RA and side B's to
 *                     127.0.0.1:RB; K is 0 (audio, 8 kHz) or 1 (video, 90 kHz); "ok"
 *   run STEP DURATION_MS DRAIN_MS AUDIO_PPS VIDEO_PPS AUDIO_SIZE VIDEO_SIZE STREAMS
 *                     send on the first STREAMS streams for DURATION_MS, keep receiving
 *                     DRAIN_MS more, then answer one JSON object with the step's figures
 *   quit              (or end of input) exit
 * It prints "ready" once it listens for commands.
 *
 * Built by the harness: gcc -O2 -o media_load media_load.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x56524d42u /* "VRMB" */
#define HEADER 40          /* RTP header (12) + our fields (28) */
#define MAX_DATAGRAM 2048
#define BATCH 32
#define HIST_US 200000 /* latency and lag histograms: 1 us buckets up to 200 ms */
#define TICK_NS 100000 /* packets due within 0.1 ms are sent in one batch */

struct stream {
    struct sockaddr_in to[2]; /* where side A and side B send (the relay) */
    int kind;       /* 0 audio, 1 video */
    int targeted;
};

/* One direction of one stream during a step: d = 2 * stream + side that sends. */
struct flow {
    int64_t next_ns;
    int64_t period_ns;
    uint32_t seq;
    uint64_t sent, received, duplicates, reordered;
    uint32_t max_seq;
    int have_max;
    uint8_t *seen; /* one bit per sequence number */
    uint32_t seen_bits;
    double jitter_ns;
    int64_t last_transit;
    int have_transit;
};

static struct stream *streams;
static size_t stream_count, stream_cap;
static int epfd;
static int side_fd[2] = {-1, -1}, side_port[2]; /* the sockets of all side A and side B */

/* The batch being filled for each side's socket: datagram, destination, direction, due. */
static unsigned char tx_buf[2][BATCH][MAX_DATAGRAM];
static struct iovec tx_iov[2][BATCH];
static struct mmsghdr tx_msgs[2][BATCH];
static size_t tx_flow[2][BATCH];
static int64_t tx_due[2][BATCH];
static int tx_len[2];

static struct flow *flows;
static size_t *heap; /* flow indexes, min-heap on next_ns */
static size_t heap_len;

static uint32_t *latency_hist, *lag_hist;
static uint64_t latency_over, lag_over, latency_max_us, lag_max_us;
static uint64_t corrupt, stale, wrong_socket, send_errors, verified;

static unsigned char fill[MAX_DATAGRAM];
static unsigned char rx_buf[BATCH][MAX_DATAGRAM];
static char rx_ctl[BATCH][CMSG_SPACE(sizeof(struct timespec))];
static struct iovec rx_iov[BATCH];
static struct mmsghdr rx_msgs[BATCH];

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + (double)r.ru_stime.tv_sec +
           r.ru_stime.tv_usec / 1e6;
}

/* A hash of the datagram but its send time and checksum (bytes 28-39), so the send time
 * can be written at the last moment (a damaged send time shows as a wild delay): FNV-1a
 * over the header's bytes, then a multiply-xorshift over 8-byte words, then the tail. */
static uint32_t checksum(const unsigned char *p, size_t len) {
    uint64_t h = 14695981039346656037ull;
    size_t i = 0;
    for (; i < 28 && i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
    for (i = 40; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    }
    for (; i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
    return (uint32_t)(h ^ (h >> 32));
}

static void put32(unsigned char *p, uint32_t v) {
    v = htonl(v);
    memcpy(p, &v, 4);
}
static uint32_t get32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}
static void put64(unsigned char *p, uint64_t v) {
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}
static uint64_t get64(const unsigned char *p) {
    return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

static void heap_swap(size_t a, size_t b) {
    size_t t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
}
static void heap_down(size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_len && flows[heap[l]].next_ns < flows[heap[m]].next_ns) m = l;
        if (r < heap_len && flows[heap[r]].next_ns < flows[heap[m]].next_ns) m = r;
        if (m == i) return;
        heap_swap(i, m);
        i = m;
    }
}
static void heap_up(size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (flows[heap[p]].next_ns <= flows[heap[i]].next_ns) return;
        heap_swap(i, p);
        i = p;
    }
}

static void record(uint32_t *hist, uint64_t *over, uint64_t *max, int64_t ns) {
    uint64_t us = ns > 0 ? (uint64_t)(ns / 1000) : 0;
    if (us > *max) *max = us;
    if (us < HIST_US) {
        hist[us]++;
    } else {
        (*over)++;
    }
}

static double percentile(const uint32_t *hist, uint64_t over, double q) {
    uint64_t total = over;
    for (size_t i = 0; i < HIST_US; i++) total += hist[i];
    if (total == 0) return 0.0;
    uint64_t rank = (uint64_t)ceil(q * (double)total);
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_US; i++) {
        seen += hist[i];
        if (seen >= rank) return (double)i + 0.5;
    }
    return (double)HIST_US;
}

static int bind_socket(int *port) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int on = 1, size = 16 << 20;
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    /* every stream's packets queue here: root may exceed net.core.rmem_max */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static int bind_streams(long n) {
    if (side_fd[0] < 0) {
        for (int side = 0; side < 2; side++) {
            side_fd[side] = bind_socket(&side_port[side]);
            if (side_fd[side] < 0) return -1;
            struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)side};
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, side_fd[side], &ev) < 0) return -1;
        }
    }
    if (stream_count + (size_t)n > stream_cap) {
        stream_cap = stream_count + (size_t)n + 256;
        streams = realloc(streams, stream_cap * sizeof *streams);
        if (!streams) return -1;
    }
    for (long i = 0; i < n; i++) memset(&streams[stream_count++], 0, sizeof *streams);
    return 0;
}

static void flush(int side) {
    int n = tx_len[side];
    if (n == 0) return;
    int64_t t = now_ns();
    for (int k = 0; k < n; k++) put64(tx_buf[side][k] + 28, (uint64_t)t);
    int done = 0;
    while (done < n) {
        int m = sendmmsg(side_fd[side], tx_msgs[side] + done, (unsigned)(n - done), 0);
        if (m <= 0) {
            send_errors += (uint64_t)(n - done); /* a full buffer: not sent, not counted */
            break;
        }
        for (int k = done; k < done + m; k++) {
            flows[tx_flow[side][k]].sent++;
            record(lag_hist, &lag_over, &lag_max_us, t - tx_due[side][k]);
        }
        done += m;
    }
    tx_len[side] = 0;
}

static void queue_one(size_t d, uint32_t step, int64_t due, size_t audio_size, size_t video_size) {
    int side = (int)(d % 2);
    struct stream *s = &streams[d / 2];
    struct flow *f = &flows[d];
    size_t size = s->kind ? video_size : audio_size;
    int k = tx_len[side];
    unsigned char *tx = tx_buf[side][k];
    memcpy(tx, fill, size);
    uint32_t rate = s->kind ? 90000u : 8000u;
    tx[0] = 0x80;
    tx[1] = s->kind ? 96 : 0;
    tx[2] = (unsigned char)(f->seq >> 8);
    tx[3] = (unsigned char)f->seq;
    put32(tx + 4, (uint32_t)((uint64_t)due / 1000 * rate / 1000000));
    put32(tx + 8, 0x10000000u + (uint32_t)d);
    put32(tx + 12, MAGIC);
    put32(tx + 16, step);
    put32(tx + 20, (uint32_t)d);
    put32(tx + 24, f->seq);
    put32(tx + 36, checksum(tx, size));
    tx_iov[side][k].iov_len = size;
    tx_msgs[side][k].msg_hdr.msg_name = &s->to[side];
    tx_msgs[side][k].msg_hdr.msg_namelen = sizeof s->to[side];
    tx_flow[side][k] = d;
    tx_due[side][k] = due;
    f->seq++;
    if (++tx_len[side] == BATCH) flush(side);
}

static void receive(int side, uint32_t step, size_t audio_size, size_t video_size, size_t nflows) {
    for (;;) {
        for (int k = 0; k < BATCH; k++) {
            rx_msgs[k].msg_hdr.msg_controllen = sizeof rx_ctl[k];
            rx_msgs[k].msg_hdr.msg_flags = 0;
        }
        int n = recvmmsg(side_fd[side], rx_msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) return;
        int64_t fallback = now_ns();
        for (int k = 0; k < n; k++) {
            unsigned char *p = rx_buf[k];
            size_t len = rx_msgs[k].msg_len;
            int64_t rx_ns = fallback;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&rx_msgs[k].msg_hdr); c;
                 c = CMSG_NXTHDR(&rx_msgs[k].msg_hdr, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    rx_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
                }
            }
            if (len < HEADER || get32(p + 12) != MAGIC) {
                corrupt++;
                continue;
            }
            uint32_t d = get32(p + 20);
            if (get32(p + 16) != step) {
                stale++;
                continue;
            }
            /* a packet of direction d must reach the other side of its stream */
            if (d >= nflows || (int)(d % 2) == side) {
                wrong_socket++;
                continue;
            }
            size_t want = streams[d / 2].kind ? video_size : audio_size;
            if (len != want || get32(p + 36) != checksum(p, len)) {
                corrupt++;
                continue;
            }
            verified++;
            struct flow *f = &flows[d];
            uint32_t seq = get32(p + 24);
            if (seq >= f->seen_bits) {
                corrupt++;
                continue;
            }
            if (f->seen[seq / 8] & (1u << (seq % 8))) {
                f->duplicates++;
                continue;
            }
            f->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
            f->received++;
            if (f->have_max && seq < f->max_seq) f->reordered++;
            if (!f->have_max || seq > f->max_seq) {
                f->max_seq = seq;
                f->have_max = 1;
            }
            int64_t transit = rx_ns - (int64_t)get64(p + 28);
            record(latency_hist, &latency_over, &latency_max_us, transit);
            if (f->have_transit) {
                int64_t delta = transit - f->last_transit;
                double ad = (double)(delta < 0 ? -delta : delta);
                f->jitter_ns += (ad - f->jitter_ns) / 16.0; /* RFC 3550 A.8 */
            }
            f->last_transit = transit;
            f->have_transit = 1;
        }
        if (n < BATCH) return;
    }
}

static void run(uint32_t step, long duration_ms, long drain_ms, long audio_pps, long video_pps,
                size_t audio_size, size_t video_size, size_t nstreams) {
    if (nstreams > stream_count) nstreams = stream_count;
    size_t nflows = 2 * nstreams;
    flows = calloc(nflows ? nflows : 1, sizeof *flows);
    heap = calloc(nflows ? nflows : 1, sizeof *heap);
    memset(latency_hist, 0, HIST_US * sizeof *latency_hist);
    memset(lag_hist, 0, HIST_US * sizeof *lag_hist);
    latency_over = lag_over = latency_max_us = lag_max_us = 0;
    corrupt = stale = wrong_socket = send_errors = verified = 0;

    int64_t start = now_ns() + 1000000; /* 1 ms to set up */
    heap_len = 0;
    for (size_t d = 0; d < nflows; d++) {
        struct stream *s = &streams[d / 2];
        struct flow *f = &flows[d];
        long pps = s->kind ? video_pps : audio_pps;
        if (!s->targeted || pps <= 0) continue;
        f->period_ns = 1000000000 / pps;
        /* phases spread as independent calls would be: the golden-ratio sequence keeps
         * the two directions of a stream, and neighbouring streams, apart */
        double phase = fmod((double)d * 0.6180339887498949, 1.0);
        f->next_ns = start + (int64_t)((double)f->period_ns * phase);
        f->seen_bits = (uint32_t)((duration_ms + 1000) * pps / 1000 + 64);
        f->seen = calloc(f->seen_bits / 8 + 1, 1);
        heap[heap_len++] = d;
        heap_up(heap_len - 1);
    }
    double cpu0 = cpu_seconds();
    int64_t send_end = start + duration_ms * 1000000;
    int64_t drain_end = send_end + drain_ms * 1000000;
    struct epoll_event events[512];
    for (;;) {
        int64_t t = now_ns();
        if (t < send_end) {
            while (heap_len && flows[heap[0]].next_ns <= t + TICK_NS / 2) {
                size_t d = heap[0];
                queue_one(d, step, flows[d].next_ns, audio_size, video_size);
                flows[d].next_ns += flows[d].period_ns;
                heap_down(0);
            }
            flush(0);
            flush(1);
        } else if (t >= drain_end) {
            break;
        }
        int64_t wake = t < send_end ? (heap_len ? flows[heap[0]].next_ns : send_end) : drain_end;
        if (wake > send_end && t < send_end) wake = send_end;
        if (t < send_end && wake < t + TICK_NS) wake = t + TICK_NS; /* the next tick */
        int64_t wait = wake - now_ns();
        if (wait < 0) wait = 0;
        struct timespec ts = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};
        int n = epoll_pwait2(epfd, events, 512, &ts, NULL);
        for (int k = 0; k < n; k++)
            receive((int)events[k].data.u64, step, audio_size, video_size, nflows);
    }
    double cpu = cpu_seconds() - cpu0;

    uint64_t sent = 0, received = 0, duplicates = 0, reordered = 0, silent = 0;
    uint64_t audio_sent = 0, video_sent = 0, audio_received = 0, video_received = 0;
    double jitter_sum = 0, jitter_max = 0;
    size_t jitter_n = 0;
    for (size_t d = 0; d < nflows; d++) {
        struct flow *f = &flows[d];
        if (!f->period_ns) continue;
        sent += f->sent;
        received += f->received;
        duplicates += f->duplicates;
        reordered += f->reordered;
        if (streams[d / 2].kind) {
            video_sent += f->sent;
            video_received += f->received;
        } else {
            audio_sent += f->sent;
            audio_received += f->received;
        }
        if (f->sent > 0 && f->received == 0) silent++;
        if (f->have_transit) {
            jitter_sum += f->jitter_ns;
            if (f->jitter_ns > jitter_max) jitter_max = f->jitter_ns;
            jitter_n++;
        }
        free(f->seen);
    }
    printf("{\"step\": %u, \"flows\": %zu, \"duration_s\": %.6f, \"sent\": %llu, "
           "\"received\": %llu, \"lost\": %llu, \"audio_sent\": %llu, \"audio_received\": %llu, "
           "\"video_sent\": %llu, \"video_received\": %llu, \"duplicates\": %llu, "
           "\"reordered\": %llu, \"corrupt\": %llu, \"stale\": %llu, \"wrong_socket\": %llu, "
           "\"checksums_verified\": %llu, \"send_errors\": %llu, \"silent_flows\": %llu, "
           "\"latency_p50_us\": %.1f, \"latency_p99_us\": %.1f, \"latency_max_us\": %llu, "
           "\"jitter_mean_us\": %.2f, \"jitter_max_us\": %.2f, \"send_lag_p99_us\": %.1f, "
           "\"send_lag_max_us\": %llu, \"generator_cpu_s\": %.6f}\n",
           step, heap_len, (double)duration_ms / 1000.0, (unsigned long long)sent,
           (unsigned long long)received, (unsigned long long)(sent - received),
           (unsigned long long)audio_sent, (unsigned long long)audio_received,
           (unsigned long long)video_sent, (unsigned long long)video_received,
           (unsigned long long)duplicates, (unsigned long long)reordered,
           (unsigned long long)corrupt, (unsigned long long)stale,
           (unsigned long long)wrong_socket, (unsigned long long)verified,
           (unsigned long long)send_errors, (unsigned long long)silent,
           percentile(latency_hist, latency_over, 0.50),
           percentile(latency_hist, latency_over, 0.99), (unsigned long long)latency_max_us,
           jitter_n ? jitter_sum / (double)jitter_n / 1000.0 : 0.0, jitter_max / 1000.0,
           percentile(lag_hist, lag_over, 0.99), (unsigned long long)lag_max_us, cpu);
    fflush(stdout);
    free(flows);
    free(heap);
    flows = NULL;
    heap = NULL;
}

int main(void) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
    uint32_t x = 2463534242u; /* the payload's filler: fixed pseudo-random bytes */
    for (size_t i = 0; i < sizeof fill; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        fill[i] = (unsigned char)x;
    }
    for (int side = 0; side < 2; side++) {
        for (int k = 0; k < BATCH; k++) {
            tx_iov[side][k] = (struct iovec){.iov_base = tx_buf[side][k], .iov_len = 0};
            tx_msgs[side][k].msg_hdr = (struct msghdr){.msg_iov = &tx_iov[side][k], .msg_iovlen = 1};
        }
    }
    for (int k = 0; k < BATCH; k++) {
        rx_iov[k] = (struct iovec){.iov_base = rx_buf[k], .iov_len = MAX_DATAGRAM};
        rx_msgs[k].msg_hdr = (struct msghdr){.msg_iov = &rx_iov[k], .msg_iovlen = 1,
                                             .msg_control = rx_ctl[k]};
    }
    latency_hist = calloc(HIST_US, sizeof *latency_hist);
    lag_hist = calloc(HIST_US, sizeof *lag_hist);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0 || !latency_hist || !lag_hist) return 1;
    printf("ready\n");
    fflush(stdout);

    char line[512];
    while (fgets(line, sizeof line, stdin)) {
        long n, s, ra, rb, k, dur, drain, apps, vpps, asize, vsize, count;
        unsigned step;
        if (sscanf(line, "bind %ld", &n) == 1) {
            size_t first = stream_count;
            if (n < 0 || bind_streams(n) < 0) {
                printf("error %s\n", strerror(errno));
            } else {
                for (size_t i = first; i < stream_count; i++)
                    printf("%s%d %d", i == first ? "" : " ", side_port[0], side_port[1]);
                printf("\n");
            }
        } else if (sscanf(line, "target %ld %ld %ld %ld", &s, &ra, &rb, &k) == 4) {
            if (s < 0 || (size_t)s >= stream_count) {
                printf("error no stream %ld\n", s);
            } else {
                struct stream *st = &streams[s];
                long ports[2] = {ra, rb};
                for (int side = 0; side < 2; side++) {
                    memset(&st->to[side], 0, sizeof st->to[side]);
                    st->to[side].sin_family = AF_INET;
                    st->to[side].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                    st->to[side].sin_port = htons((unsigned short)ports[side]);
                }
                st->kind = k ? 1 : 0;
                st->targeted = 1;
                printf("ok\n");
            }
        } else if (sscanf(line, "run %u %ld %ld %ld %ld %ld %ld %ld", &step, &dur, &drain, &apps,
                          &vpps, &asize, &vsize, &count) == 8) {
            if (asize < HEADER || vsize < HEADER || asize > MAX_DATAGRAM || vsize > MAX_DATAGRAM) {
                printf("error packet sizes must be %d-%d bytes\n", HEADER, MAX_DATAGRAM);
            } else {
                run(step, dur, drain, apps, vpps, (size_t)asize, (size_t)vsize, (size_t)count);
            }
        } else if (strncmp(line, "quit", 4) == 0) {
            return 0;
        } else {
            printf("error unknown command\n");
        }
        fflush(stdout);
    }
    return 0;
}
