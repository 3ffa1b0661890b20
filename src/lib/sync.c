#include "sync.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int ab_sync_send(int sock, enum ab_sync_type type, int code, const char *text, int passed_fd)
{
	struct ab_sync_msg msg;
	struct iovec iov = { .iov_base = &msg, .iov_len = sizeof(msg) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	memset(&msg, 0, sizeof(msg));
	msg.type = type;
	msg.code = code;
	if (text) {
		size_t n = strlen(text);
		if (n >= sizeof(msg.text))
			n = sizeof(msg.text) - 1;
		memcpy(msg.text, text, n);
	}
	if (passed_fd >= 0) {
		struct cmsghdr *c;
		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = sizeof(control.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &passed_fd, sizeof(int));
	}
	for (;;) {
		if (sendmsg(sock, &mh, MSG_NOSIGNAL) >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int ab_sync_recv(int sock, struct ab_sync_msg *msg, int *passed_fd)
{
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(*msg) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf) };
	ssize_t n;

	if (passed_fd)
		*passed_fd = -1;
	/* ECONNRESET comes once, ahead of what is queued, when the peer ended with our last
	 * message unread (a child that failed just after PROCEED was sent): its own last
	 * messages (the error that says why) are still there to read. */
	for (int resets = 0;;) {
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (n >= 0 || (errno != EINTR && (errno != ECONNRESET || resets++ > 0)))
			break;
	}
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPIPE;
	if ((size_t)n != sizeof(*msg))
		return -EBADMSG;
	msg->text[sizeof(msg->text) - 1] = '\0';
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int fd;
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
			if (passed_fd && *passed_fd < 0)
				*passed_fd = fd;
			else
				close(fd);
		}
	}
	return 0;
}
