/*
 * One fd over a unix socket (SCM_RIGHTS) with a one-byte message: send_fd, and recv_fd
 * (non-blocking: -1 when nothing is queued).
 */
#include <string.h>
#include <sys/socket.h>

static int send_fd(int via, int fd) {
	char c = 0, buf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &c, 1 };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf) };
	struct cmsghdr *ch = CMSG_FIRSTHDR(&h);
	ch->cmsg_level = SOL_SOCKET; ch->cmsg_type = SCM_RIGHTS; ch->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(ch), &fd, sizeof(int));
	return sendmsg(via, &h, 0) == 1 ? 0 : -1;
}

static int recv_fd(int via) {
	char c, buf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &c, 1 };
	struct msghdr h = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf) };
	if (recvmsg(via, &h, MSG_DONTWAIT) != 1) return -1;
	struct cmsghdr *ch = CMSG_FIRSTHDR(&h);
	if (!ch || ch->cmsg_type != SCM_RIGHTS) return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(ch), sizeof(int));
	return fd;
}
