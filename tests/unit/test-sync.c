/* The sync socket between agentbox and the sandbox's first process, on real sockets: a
 * child that fails just after agentbox sent it PROCEED ends with that message unread, and
 * the kernel then reports ECONNRESET to agentbox ahead of the child's own last message
 * (the error that says why it failed). ab_sync_recv must still hand that message over, or
 * agentbox can only say "the sandbox exited during setup". */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/lib/sync.h"
#include "tap.h"

int main(void)
{
	struct ab_sync_msg msg;
	int s[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s) < 0) {
		printf("Bail out! socketpair: %m\n");
		return 1;
	}
	/* s[0]: agentbox; s[1]: the child, which fails, says why, and ends without reading */
	ok(ab_sync_send(s[1], AB_SYNC_ERROR, EINVAL, "cannot mount the copy-on-write workspace '/p'", -1) == 0,
	   "the child sends its error");
	ok(ab_sync_send(s[0], AB_SYNC_PROCEED, 0, NULL, -1) == 0, "agentbox sends PROCEED, never read");
	close(s[1]);

	int r = ab_sync_recv(s[0], &msg, NULL);
	ok(r == 0 && msg.type == AB_SYNC_ERROR && msg.code == EINVAL &&
		   strcmp(msg.text, "cannot mount the copy-on-write workspace '/p'") == 0,
	   "agentbox reads the child's error past the reset (r=%d)", r);
	ok(ab_sync_recv(s[0], &msg, NULL) == -EPIPE, "then the end of the conversation");
	close(s[0]);

	/* The condition itself, without ab_sync_recv: the kernel reports the reset first. */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s) < 0) {
		printf("Bail out! socketpair: %m\n");
		return 1;
	}
	ab_sync_send(s[1], AB_SYNC_ERROR, EINVAL, "why", -1);
	ab_sync_send(s[0], AB_SYNC_PROCEED, 0, NULL, -1);
	close(s[1]);
	ssize_t n = recv(s[0], &msg, sizeof(msg), 0);
	int e = errno;
	ok(n < 0 && e == ECONNRESET, "a plain recv sees ECONNRESET ahead of the queued message (n=%zd, %s)", n,
	   n < 0 ? strerror(e) : "no error");
	n = recv(s[0], &msg, sizeof(msg), 0);
	ok(n == (ssize_t)sizeof(msg) && msg.type == AB_SYNC_ERROR, "and the message after it");
	close(s[0]);

	/* A reset with nothing queued behind it is the end. */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s) < 0) {
		printf("Bail out! socketpair: %m\n");
		return 1;
	}
	ab_sync_send(s[0], AB_SYNC_PROCEED, 0, NULL, -1);
	close(s[1]);
	r = ab_sync_recv(s[0], &msg, NULL);
	ok(r == -EPIPE, "a child gone without a word: -EPIPE (r=%d)", r);
	close(s[0]);
	return tap_done();
}
