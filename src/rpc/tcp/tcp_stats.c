/* TCP_INFO counters of a socket (linux/tcp.h: glibc's struct tcp_info lacks the RFC 4898
 * segment counters, and the two headers cannot be included together). */
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include <stdint.h>

/* Not through rpc_transport.h: it includes libuv, which includes netinet/tcp.h. */
int rpc_tcp_fd_stats(int fd, uint64_t *data_segs_out, uint64_t *retrans);

int rpc_tcp_fd_stats(int fd, uint64_t *data_segs_out, uint64_t *retrans)
{
    struct tcp_info ti;
    memset(&ti, 0, sizeof(ti));
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return -errno;
    /* tcpi_data_segs_out exists since Linux 4.6: a shorter answer means an older kernel */
    if (len < offsetof(struct tcp_info, tcpi_data_segs_out) + sizeof(ti.tcpi_data_segs_out))
        return -ENOTSUP;
    *data_segs_out = ti.tcpi_data_segs_out;
    *retrans = ti.tcpi_total_retrans;
    return 0;
}
