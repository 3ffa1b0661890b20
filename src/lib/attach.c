#include "attach.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/strutil.h"
#include "pty.h"

/* Output goes out in pieces no larger than this: small enough for any socket buffer. */
#define CHUNK (16 * 1024)
/* A client further behind than this is dropped. */
#define CLIENT_QUEUE_MAX (1024 * 1024)
/* Messages taken from one client per call, so that one cannot starve the others. */
#define READS_PER_CALL 16
/* How long exited() waits for slow clients to take the news. */
#define EXIT_DRAIN_MS 500

#define DETACH_PREFIX 0x10 /* Ctrl-p */
#define DETACH_KEY 0x11    /* Ctrl-q */

/* ---- messages ---- */

static bool text_ok(const void *p, size_t len)
{
	return !len || (p && !memchr(p, '\0', len));
}

/* The payload length of m, or -EINVAL when m breaks a limit. */
static int payload_len(const struct ab_attach_msg *m)
{
	switch (m->type) {
	case AB_MSG_HELLO:
		return 5;
	case AB_MSG_RESIZE:
		return 4;
	case AB_MSG_DETACH:
		return 0;
	case AB_MSG_WELCOME:
		return m->replay_len <= AB_ATTACH_REPLAY_SIZE ? 5 : -EINVAL;
	case AB_MSG_INPUT:
	case AB_MSG_OUTPUT:
		return m->len >= 1 && m->len <= AB_ATTACH_MAX_PAYLOAD && m->data ? (int)m->len : -EINVAL;
	case AB_MSG_EXITED:
		return m->len <= AB_ATTACH_REASON_MAX && text_ok(m->data, m->len) ? 4 + (int)m->len : -EINVAL;
	case AB_MSG_ERROR:
		return m->len >= 1 && m->len <= AB_ATTACH_ERROR_MAX && text_ok(m->data, m->len) ? (int)m->len
												  : -EINVAL;
	}
	return -EINVAL;
}

int ab_attach_msg_encode(const struct ab_attach_msg *m, void *buf, size_t size)
{
	uint8_t *b = buf, *p = b + AB_ATTACH_HEADER_SIZE;
	int plen = payload_len(m);
	uint32_t len32;

	if (plen < 0)
		return plen;
	if (size < AB_ATTACH_HEADER_SIZE + (size_t)plen)
		return -ENOBUFS;
	len32 = (uint32_t)plen;
	b[0] = (uint8_t)m->type;
	b[1] = b[2] = b[3] = 0;
	memcpy(b + 4, &len32, 4);
	switch (m->type) {
	case AB_MSG_HELLO:
		p[0] = m->want_write;
		memcpy(p + 1, &m->rows, 2);
		memcpy(p + 3, &m->cols, 2);
		break;
	case AB_MSG_RESIZE:
		memcpy(p, &m->rows, 2);
		memcpy(p + 2, &m->cols, 2);
		break;
	case AB_MSG_WELCOME:
		p[0] = m->is_writer;
		memcpy(p + 1, &m->replay_len, 4);
		break;
	case AB_MSG_EXITED:
		memcpy(p, &m->code, 4);
		if (m->len)
			memcpy(p + 4, m->data, m->len);
		break;
	case AB_MSG_INPUT:
	case AB_MSG_OUTPUT:
	case AB_MSG_ERROR:
		memcpy(p, m->data, m->len);
		break;
	case AB_MSG_DETACH:
		break;
	}
	return AB_ATTACH_HEADER_SIZE + plen;
}

int ab_attach_msg_decode(const void *buf, size_t len, struct ab_attach_msg *m)
{
	const uint8_t *b = buf, *p = b + AB_ATTACH_HEADER_SIZE;
	uint32_t plen;

	memset(m, 0, sizeof(*m));
	if (len < AB_ATTACH_HEADER_SIZE || b[1] || b[2] || b[3])
		return -EBADMSG;
	memcpy(&plen, b + 4, 4);
	if (plen > AB_ATTACH_MAX_PAYLOAD || plen != len - AB_ATTACH_HEADER_SIZE)
		return -EBADMSG;
	m->type = (enum ab_attach_type)b[0];
	switch (b[0]) {
	case AB_MSG_HELLO:
		if (plen != 5 || p[0] > 1)
			return -EBADMSG;
		m->want_write = p[0];
		memcpy(&m->rows, p + 1, 2);
		memcpy(&m->cols, p + 3, 2);
		return 0;
	case AB_MSG_RESIZE:
		if (plen != 4)
			return -EBADMSG;
		memcpy(&m->rows, p, 2);
		memcpy(&m->cols, p + 2, 2);
		return 0;
	case AB_MSG_DETACH:
		return plen == 0 ? 0 : -EBADMSG;
	case AB_MSG_WELCOME:
		if (plen != 5 || p[0] > 1)
			return -EBADMSG;
		m->is_writer = p[0];
		memcpy(&m->replay_len, p + 1, 4);
		return m->replay_len <= AB_ATTACH_REPLAY_SIZE ? 0 : -EBADMSG;
	case AB_MSG_INPUT:
	case AB_MSG_OUTPUT:
		if (plen < 1)
			return -EBADMSG;
		m->data = p;
		m->len = plen;
		return 0;
	case AB_MSG_EXITED:
		if (plen < 4 || plen > 4 + AB_ATTACH_REASON_MAX || memchr(p + 4, '\0', plen - 4))
			return -EBADMSG;
		memcpy(&m->code, p, 4);
		m->data = p + 4;
		m->len = plen - 4;
		return 0;
	case AB_MSG_ERROR:
		if (plen < 1 || plen > AB_ATTACH_ERROR_MAX || memchr(p, '\0', plen))
			return -EBADMSG;
		m->data = p;
		m->len = plen;
		return 0;
	default:
		return -EBADMSG;
	}
}

/* ---- socket addresses: a path too long for sun_path goes through its directory ---- */

struct sock_addr {
	struct sockaddr_un sa;
	socklen_t len;
	int dir_fd; /* held while the address is in use */
};

static void sock_addr_done(struct sock_addr *a)
{
	if (a->dir_fd >= 0)
		close(a->dir_fd);
	a->dir_fd = -1;
}

static int sock_addr_make(struct sock_addr *a, const char *path)
{
	size_t n = strlen(path);

	memset(a, 0, sizeof(*a));
	a->dir_fd = -1;
	a->sa.sun_family = AF_UNIX;
	if (!n)
		return -EINVAL;
	if (n >= sizeof(a->sa.sun_path)) {
		_cleanup_free_ char *dir = strdup(path);
		char *slash = dir ? strrchr(dir, '/') : NULL;
		const char *base;
		if (!dir)
			return -ENOMEM;
		if (!slash)
			return -ENAMETOOLONG;
		base = path + (slash - dir) + 1;
		*(slash == dir ? slash + 1 : slash) = '\0';
		a->dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (a->dir_fd < 0)
			return -errno;
		if ((size_t)snprintf(a->sa.sun_path, sizeof(a->sa.sun_path), "/proc/self/fd/%d/%s", a->dir_fd,
				     base) >= sizeof(a->sa.sun_path)) {
			sock_addr_done(a);
			return -ENAMETOOLONG;
		}
	} else {
		memcpy(a->sa.sun_path, path, n + 1);
	}
	a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a->sa.sun_path) + 1);
	return 0;
}

static int connect_path(int fd, const char *path)
{
	struct sock_addr a;
	int r = sock_addr_make(&a, path);

	if (r < 0)
		return r;
	do
		r = connect(fd, (struct sockaddr *)&a.sa, a.len);
	while (r < 0 && errno == EINTR);
	r = r < 0 ? -errno : 0;
	sock_addr_done(&a);
	return r;
}

/* ---- the server ---- */

struct client {
	int fd; /* -1: a free slot */
	bool welcomed;
	bool writer;
	bool closing; /* told the sandbox exited: closes once its queue is sent */
	bool hung_up; /* its end is closed: nothing is sent, what it sent is still read */
	uint8_t *q;   /* encoded messages not sent yet, from q_off to q_len */
	size_t q_off, q_len, q_cap;
};

struct ab_attach_server {
	int listen_fd;
	char *path;
	dev_t dev;
	ino_t ino;
	struct client clients[AB_ATTACH_MAX_CLIENTS];
	size_t n_clients;
	uint8_t ring[AB_ATTACH_REPLAY_SIZE];
	size_t ring_head, ring_len; /* next byte goes to ring_head */
	bool exited;
	int32_t exit_code;
	char reason[AB_ATTACH_REASON_MAX + 1];
	uint8_t rx[AB_ATTACH_MAX_MSG]; /* a message in: callbacks get pointers into it */
	uint8_t io[AB_ATTACH_MAX_MSG]; /* a message out */
	uint8_t replay[AB_ATTACH_REPLAY_SIZE];
};

static void client_drop(struct ab_attach_server *s, struct client *c)
{
	if (c->fd < 0)
		return;
	close(c->fd);
	free(c->q);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	s->n_clients--;
}

/* A send failed. When the client closed its end, its last messages (keys typed just
 * before a detach, the DETACH) may still wait in the socket: they are read, and the
 * hang-up is seen there. Any other failure drops it now. */
static void client_send_failed(struct ab_attach_server *s, struct client *c, int error)
{
	if ((error != EPIPE && error != ECONNRESET) || c->closing) {
		client_drop(s, c);
		return;
	}
	c->hung_up = true;
	free(c->q);
	c->q = NULL;
	c->q_off = c->q_len = c->q_cap = 0;
}

/* Sends what is queued. */
static void client_flush(struct ab_attach_server *s, struct client *c)
{
	while (c->fd >= 0 && c->q_off < c->q_len) {
		uint32_t plen;
		memcpy(&plen, c->q + c->q_off + 4, 4);
		size_t len = AB_ATTACH_HEADER_SIZE + plen;
		if (send(c->fd, c->q + c->q_off, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			client_send_failed(s, c, errno);
			return;
		}
		c->q_off += len;
	}
	if (c->fd >= 0) {
		c->q_off = c->q_len = 0;
		if (c->closing)
			client_drop(s, c);
	}
}

/* Sends one message now, or queues it behind those waiting; a client too far behind is
 * dropped. */
static void client_send(struct ab_attach_server *s, struct client *c, const struct ab_attach_msg *m)
{
	int len = ab_attach_msg_encode(m, s->io, sizeof(s->io));

	if (c->fd < 0 || c->hung_up || len < 0)
		return;
	if (c->q_off == c->q_len) {
		if (send(c->fd, s->io, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) == len)
			return;
		if (errno != EAGAIN && errno != EINTR) {
			client_send_failed(s, c, errno);
			return;
		}
	}
	if (c->q_len - c->q_off + (size_t)len > CLIENT_QUEUE_MAX) {
		client_drop(s, c);
		return;
	}
	if (c->q_off && c->q_len + (size_t)len > c->q_cap) {
		memmove(c->q, c->q + c->q_off, c->q_len - c->q_off);
		c->q_len -= c->q_off;
		c->q_off = 0;
	}
	if (c->q_len + (size_t)len > c->q_cap) {
		size_t cap = c->q_cap ? c->q_cap : 64 * 1024;
		uint8_t *grown;
		while (cap < c->q_len + (size_t)len)
			cap *= 2;
		grown = realloc(c->q, cap);
		if (!grown) {
			client_drop(s, c);
			return;
		}
		c->q = grown;
		c->q_cap = cap;
	}
	memcpy(c->q + c->q_len, s->io, (size_t)len);
	c->q_len += (size_t)len;
}

static void client_output(struct ab_attach_server *s, struct client *c, const uint8_t *p, size_t len)
{
	while (len && c->fd >= 0 && !c->hung_up) {
		size_t n = len < CHUNK ? len : CHUNK;
		struct ab_attach_msg m = { .type = AB_MSG_OUTPUT, .data = p, .len = n };
		client_send(s, c, &m);
		p += n;
		len -= n;
	}
}

static void client_error(struct ab_attach_server *s, struct client *c, const char *text)
{
	struct ab_attach_msg m = { .type = AB_MSG_ERROR, .data = text, .len = strlen(text) };

	client_send(s, c, &m);
	client_drop(s, c);
}

static void client_exited(struct ab_attach_server *s, struct client *c)
{
	struct ab_attach_msg m = { .type = AB_MSG_EXITED, .code = s->exit_code, .data = s->reason,
				   .len = strlen(s->reason) };

	client_send(s, c, &m);
	c->closing = true;
	client_flush(s, c);
}

static bool has_writer(const struct ab_attach_server *s)
{
	for (size_t i = 0; i < AB_ATTACH_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0 && s->clients[i].writer)
			return true;
	return false;
}

/* Answers HELLO: the role, then the recent output. Returns whether the client asked for a
 * size to apply (it became the writer). */
static bool client_welcome(struct ab_attach_server *s, struct client *c, bool want_write)
{
	size_t start = (s->ring_head + AB_ATTACH_REPLAY_SIZE - s->ring_len) % AB_ATTACH_REPLAY_SIZE;
	size_t first = AB_ATTACH_REPLAY_SIZE - start, n = s->ring_len, skip = 0;
	struct ab_attach_msg m = { .type = AB_MSG_WELCOME };

	if (first > n)
		first = n;
	memcpy(s->replay, s->ring + start, first);
	memcpy(s->replay + first, s->ring, n - first);
	/* a replay cut in the middle of a character starts at the next one */
	while (skip < n && skip < 3 && (s->replay[skip] & 0xc0) == 0x80)
		skip++;
	c->writer = want_write && !s->exited && !has_writer(s);
	c->welcomed = true;
	m.is_writer = c->writer;
	m.replay_len = (uint32_t)(n - skip);
	client_send(s, c, &m);
	client_output(s, c, s->replay + skip, n - skip);
	if (s->exited && c->fd >= 0)
		client_exited(s, c);
	return c->fd >= 0 && c->writer;
}

static struct client *client_by_fd(struct ab_attach_server *s, int fd)
{
	for (size_t i = 0; i < AB_ATTACH_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0 && s->clients[i].fd == fd)
			return &s->clients[i];
	return NULL;
}

/* Takes the messages a client sent. The callbacks may call ab_attach_server_output or
 * ab_attach_server_exited, which may drop this client: its fd is checked after each. */
static void client_read(struct ab_attach_server *s, struct client *c, const struct ab_attach_callbacks *cb)
{
	int fd = c->fd;

	for (int k = 0; k < READS_PER_CALL && c->fd == fd; k++) {
		struct iovec iov = { .iov_base = s->rx, .iov_len = sizeof(s->rx) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct ab_attach_msg m;
		ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);

		/* A peer that closed with our messages unread leaves ECONNRESET, reported
		 * once, before what it sent last (a DETACH, its last keys): read on. */
		if (n < 0 && (errno == EINTR || errno == ECONNRESET))
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			client_drop(s, c); /* hung up */
			return;
		}
		if ((mh.msg_flags & MSG_TRUNC) || ab_attach_msg_decode(s->rx, (size_t)n, &m) < 0) {
			client_error(s, c, "invalid message");
			return;
		}
		if (!c->welcomed && m.type != AB_MSG_HELLO) {
			client_error(s, c, "expected HELLO first");
			return;
		}
		switch (m.type) {
		case AB_MSG_HELLO: {
			unsigned rows = m.rows, cols = m.cols;
			if (c->welcomed) {
				client_error(s, c, "HELLO twice");
				return;
			}
			if (client_welcome(s, c, m.want_write) && rows && cols && cb && cb->resize)
				cb->resize(rows, cols, cb->ctx);
			break;
		}
		case AB_MSG_INPUT:
			if (c->writer && !c->closing && cb && cb->input)
				cb->input(m.data, m.len, cb->ctx);
			break;
		case AB_MSG_RESIZE:
			if (c->writer && !c->closing && m.rows && m.cols && cb && cb->resize)
				cb->resize(m.rows, m.cols, cb->ctx);
			break;
		case AB_MSG_DETACH:
			client_drop(s, c);
			return;
		case AB_MSG_WELCOME:
		case AB_MSG_OUTPUT:
		case AB_MSG_EXITED:
		case AB_MSG_ERROR:
			client_error(s, c, "unexpected message");
			return;
		}
	}
}

static void accept_clients(struct ab_attach_server *s)
{
	for (int k = 0; k < 64; k++) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ucred cred;
		socklen_t len = sizeof(cred);
		struct client *c = NULL;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return; /* EAGAIN, or out of fds: the rest wait in the backlog */
		}
		/* The socket is 0600 in a private directory; this holds even if it were not. */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
		    (cred.uid != geteuid() && cred.uid != 0)) {
			close(fd);
			continue;
		}
		for (size_t i = 0; i < AB_ATTACH_MAX_CLIENTS && !c; i++)
			if (s->clients[i].fd < 0)
				c = &s->clients[i];
		if (!c) {
			static const char full[] = "too many clients attached";
			uint8_t msg[AB_ATTACH_HEADER_SIZE + sizeof(full)];
			struct ab_attach_msg m = { .type = AB_MSG_ERROR, .data = full, .len = sizeof(full) - 1 };
			int n = ab_attach_msg_encode(&m, msg, sizeof(msg));
			if (n > 0)
				send(fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
			close(fd);
			continue;
		}
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		s->n_clients++;
	}
}

int ab_attach_server_open(struct ab_attach_server **sp, const char *socket_path, struct ab_error *err)
{
	_cleanup_free_ struct ab_attach_server *s = NULL;
	_cleanup_close_ int fd = -1;
	struct sock_addr a;
	struct stat st;
	mode_t old_mask;
	int r;

	*sp = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return ab_error_set(err, ENOMEM, "cannot listen on '%s'", socket_path);
	s->listen_fd = -1;
	for (size_t i = 0; i < AB_ATTACH_MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
	if ((r = sock_addr_make(&a, socket_path)) < 0)
		return ab_error_set(err, r, "cannot listen on '%s'", socket_path);

	if (lstat(socket_path, &st) == 0) {
		_cleanup_close_ int probe = -1;
		if (!S_ISSOCK(st.st_mode)) {
			sock_addr_done(&a);
			return ab_error_set(err, EEXIST, "cannot listen on '%s'", socket_path);
		}
		probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (probe >= 0 && (connect(probe, (struct sockaddr *)&a.sa, a.len) == 0 || errno == EAGAIN)) {
			sock_addr_done(&a);
			return ab_error_set(err, EADDRINUSE, "cannot listen on '%s': another supervisor serves it",
					    socket_path);
		}
		if (unlink(socket_path) < 0 && errno != ENOENT) {
			r = -errno;
			sock_addr_done(&a);
			return ab_error_set(err, r, "cannot remove the stale socket '%s'", socket_path);
		}
	}

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		sock_addr_done(&a);
		return ab_error_set(err, r, "cannot listen on '%s'", socket_path);
	}
	/* Born 0600: no moment when another user could connect. */
	old_mask = umask(0177);
	r = bind(fd, (struct sockaddr *)&a.sa, a.len) < 0 ? -errno : 0;
	umask(old_mask);
	sock_addr_done(&a);
	if (r < 0)
		return ab_error_set(err, r, "cannot bind '%s'", socket_path);
	if (chmod(socket_path, 0600) < 0 || lstat(socket_path, &st) < 0 || listen(fd, 16) < 0) {
		r = -errno;
		unlink(socket_path);
		return ab_error_set(err, r, "cannot listen on '%s'", socket_path);
	}
	s->path = strdup(socket_path);
	if (!s->path) {
		unlink(socket_path);
		return ab_error_set(err, ENOMEM, "cannot listen on '%s'", socket_path);
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->listen_fd = TAKE_FD(fd);
	*sp = TAKE_PTR(s);
	return 0;
}

int ab_attach_server_fds(struct ab_attach_server *s, struct pollfd *fds, size_t max)
{
	size_t n = 0;

	if (max < 1 + s->n_clients)
		return -ENOBUFS;
	fds[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
	for (size_t i = 0; i < AB_ATTACH_MAX_CLIENTS; i++) {
		const struct client *c = &s->clients[i];
		if (c->fd < 0)
			continue;
		fds[n++] = (struct pollfd){ .fd = c->fd,
					    .events = (short)(POLLIN | (c->q_off < c->q_len ? POLLOUT : 0)) };
	}
	return (int)n;
}

int ab_attach_server_handle(struct ab_attach_server *s, const struct pollfd *fds, size_t n,
			    const struct ab_attach_callbacks *cb)
{
	bool pending_accept = false;

	for (size_t i = 0; i < n; i++) {
		struct client *c;
		if (!fds[i].revents || fds[i].fd < 0)
			continue;
		if (fds[i].fd == s->listen_fd) {
			pending_accept = true;
			continue;
		}
		c = client_by_fd(s, fds[i].fd);
		if (!c)
			continue;
		if (fds[i].revents & POLLNVAL) {
			client_drop(s, c);
			continue;
		}
		if (fds[i].revents & POLLOUT)
			client_flush(s, c);
		if (c->fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
			client_read(s, c, cb);
	}
	/* Last: a new client may reuse the number of an fd closed above. */
	if (pending_accept)
		accept_clients(s);
	return 0;
}

void ab_attach_server_output(struct ab_attach_server *s, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < AB_ATTACH_MAX_CLIENTS; i++) {
		struct client *c = &s->clients[i];
		if (c->fd >= 0 && c->welcomed && !c->closing)
			client_output(s, c, p, len);
	}
	if (len >= AB_ATTACH_REPLAY_SIZE) {
		memcpy(s->ring, p + len - AB_ATTACH_REPLAY_SIZE, AB_ATTACH_REPLAY_SIZE);
		s->ring_head = 0;
		s->ring_len = AB_ATTACH_REPLAY_SIZE;
		return;
	}
	size_t first = AB_ATTACH_REPLAY_SIZE - s->ring_head;
	if (first > len)
		first = len;
	memcpy(s->ring + s->ring_head, p, first);
	memcpy(s->ring, p + first, len - first);
	s->ring_head = (s->ring_head + len) % AB_ATTACH_REPLAY_SIZE;
	s->ring_len = s->ring_len + len > AB_ATTACH_REPLAY_SIZE ? AB_ATTACH_REPLAY_SIZE : s->ring_len + len;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ab_attach_server_exited(struct ab_attach_server *s, int code, const char *reason)
{
	int64_t deadline = now_ms() + EXIT_DRAIN_MS;

	s->exited = true;
	s->exit_code = code;
	snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
	for (size_t i = 0; i < AB_ATTACH_MAX_CLIENTS; i++) {
		struct client *c = &s->clients[i];
		if (c->fd < 0 || c->closing)
			continue;
		if (!c->welcomed)
			client_welcome(s, c, false); /* sends the news too */
		else
			client_exited(s, c);
	}
	/* The news should not be lost behind a queue: wait a little for slow readers. */
	while (s->n_clients) {
		struct pollfd fds[AB_ATTACH_MAX_CLIENTS];
		size_t n = 0;
		int64_t left = deadline - now_ms();
		if (left <= 0)
			break;
		for (size_t i = 0; i < AB_ATTACH_MAX_CLIENTS; i++)
			if (s->clients[i].fd >= 0)
				fds[n++] = (struct pollfd){ .fd = s->clients[i].fd, .events = POLLOUT };
		if (poll(fds, n, (int)left) < 0 && errno != EINTR)
			break;
		for (size_t k = 0; k < n; k++) {
			struct client *c = client_by_fd(s, fds[k].fd);
			if (c && (fds[k].revents & (POLLERR | POLLHUP | POLLNVAL)))
				client_drop(s, c);
			else if (c && (fds[k].revents & POLLOUT))
				client_flush(s, c);
		}
	}
	for (size_t i = 0; i < AB_ATTACH_MAX_CLIENTS; i++)
		client_drop(s, &s->clients[i]);
}

size_t ab_attach_server_clients(const struct ab_attach_server *s)
{
	return s->n_clients;
}

void ab_attach_server_close(struct ab_attach_server *s)
{
	struct stat st;

	if (!s)
		return;
	for (size_t i = 0; i < AB_ATTACH_MAX_CLIENTS; i++)
		client_drop(s, &s->clients[i]);
	/* only our own socket: a newer supervisor may have replaced it */
	if (s->path && lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	free(s->path);
	free(s);
}

/* ---- the client ---- */

struct attach {
	const char *path;
	int sock, in_fd, out_fd;
	bool read_only, welcomed, writer, in_eof, ctrl_p;
	bool broken; /* sending failed: the server is going away, what it sent is still read */
	unsigned rows, cols; /* the size last sent */
	uint8_t *q;          /* messages waiting for room in the socket */
	size_t q_len, q_cap;
	uint8_t *io;
	struct ab_error *err;
};

static void window_size(const struct attach *a, unsigned *rows, unsigned *cols)
{
	struct winsize ws;

	*rows = *cols = 0;
	if ((ioctl(a->in_fd, TIOCGWINSZ, &ws) == 0 || ioctl(a->out_fd, TIOCGWINSZ, &ws) == 0) && ws.ws_row &&
	    ws.ws_col) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

/* Queues a message for the server; the queue is sent as the socket takes it. */
static int attach_queue(struct attach *a, const struct ab_attach_msg *m)
{
	int len = ab_attach_msg_encode(m, a->io, AB_ATTACH_MAX_MSG);

	if (len < 0)
		return len;
	if (a->broken)
		return 0;
	if (a->q_len + (size_t)len > a->q_cap) {
		size_t cap = a->q_cap ? a->q_cap * 2 : 16 * 1024;
		uint8_t *grown;
		while (cap < a->q_len + (size_t)len)
			cap *= 2;
		grown = realloc(a->q, cap);
		if (!grown)
			return -ENOMEM;
		a->q = grown;
		a->q_cap = cap;
	}
	memcpy(a->q + a->q_len, a->io, (size_t)len);
	a->q_len += (size_t)len;
	return 0;
}

/* Sends what the socket takes now. When the server is gone, sending stops: the loop
 * still reads what it sent before (an EXITED, say) and then sees the end. */
static void attach_flush(struct attach *a)
{
	size_t off = 0;

	while (off < a->q_len) {
		uint32_t plen;
		memcpy(&plen, a->q + off + 4, 4);
		size_t len = AB_ATTACH_HEADER_SIZE + plen;
		if (send(a->sock, a->q + off, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				a->broken = true;
				off = a->q_len;
			}
			break;
		}
		off += len;
	}
	memmove(a->q, a->q + off, a->q_len - off);
	a->q_len -= off;
}

/* Waits up to ms for the queue to go out (before leaving). */
static void attach_flush_wait(struct attach *a, int ms)
{
	int64_t deadline = now_ms() + ms;

	for (attach_flush(a); a->q_len; attach_flush(a)) {
		struct pollfd p = { .fd = a->sock, .events = POLLOUT };
		int64_t left = deadline - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
	}
}

static int write_out(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			poll(&pfd, 1, -1);
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int send_input(struct attach *a, const uint8_t *p, size_t n)
{
	if (!n || a->read_only || !a->writer)
		return 0;
	struct ab_attach_msg m = { .type = AB_MSG_INPUT, .data = p, .len = n };
	return attach_queue(a, &m);
}

/* Reads the user's keys: all but the detach sequence go to the sandbox. Returns 1 when the
 * user detached. */
static int read_input(struct attach *a)
{
	uint8_t in[4096], out[sizeof(in) + 1];
	size_t k = 0;
	ssize_t n = read(a->in_fd, in, sizeof(in));
	int r;

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		/* EOF (or a terminal gone): no more input, but the output still comes */
		a->in_eof = true;
		if (a->ctrl_p) {
			a->ctrl_p = false;
			out[k++] = DETACH_PREFIX;
		}
		return send_input(a, out, k);
	}
	for (ssize_t i = 0; i < n; i++) {
		if (a->ctrl_p) {
			a->ctrl_p = false;
			if (in[i] == DETACH_KEY) {
				if ((r = send_input(a, out, k)) < 0)
					return r;
				return 1;
			}
			out[k++] = DETACH_PREFIX;
		}
		if (in[i] == DETACH_PREFIX)
			a->ctrl_p = true;
		else
			out[k++] = in[i];
	}
	return send_input(a, out, k);
}

static int send_resize(struct attach *a)
{
	unsigned rows, cols;

	window_size(a, &rows, &cols);
	if (!a->writer || a->read_only || !rows || !cols || (rows == a->rows && cols == a->cols))
		return 0;
	a->rows = rows;
	a->cols = cols;
	struct ab_attach_msg m = { .type = AB_MSG_RESIZE, .rows = (uint16_t)(rows > UINT16_MAX ? UINT16_MAX : rows),
				   .cols = (uint16_t)(cols > UINT16_MAX ? UINT16_MAX : cols) };
	return attach_queue(a, &m);
}

/* Takes what the server sent. > 0: the session ended (AB_ATTACH_*); 0: go on. */
static int read_server(struct attach *a, int *exit_code, char *reason, size_t reason_size)
{
	for (int k = 0; k < READS_PER_CALL; k++) {
		struct iovec iov = { .iov_base = a->io, .iov_len = AB_ATTACH_MAX_MSG };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct ab_attach_msg m;
		ssize_t n = recvmsg(a->sock, &mh, MSG_DONTWAIT);
		int r;

		/* reported once, before the last messages (the EXITED) of a server that
		 * closed with our input unread: read on */
		if (n < 0 && (errno == EINTR || errno == ECONNRESET))
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return AB_ATTACH_LOST;
		if ((mh.msg_flags & MSG_TRUNC) || ab_attach_msg_decode(a->io, (size_t)n, &m) < 0)
			return ab_error_set(a->err, EPROTO, "invalid message from '%s'", a->path);
		if (!a->welcomed && m.type != AB_MSG_WELCOME && m.type != AB_MSG_ERROR)
			return ab_error_set(a->err, EPROTO, "invalid message from '%s'", a->path);
		switch (m.type) {
		case AB_MSG_WELCOME:
			if (a->welcomed)
				return ab_error_set(a->err, EPROTO, "invalid message from '%s'", a->path);
			a->welcomed = true;
			a->writer = m.is_writer;
			break;
		case AB_MSG_OUTPUT:
			if ((r = write_out(a->out_fd, m.data, m.len)) < 0)
				return ab_error_set(a->err, r, "cannot write the output of '%s'", a->path);
			break;
		case AB_MSG_EXITED:
			if (exit_code)
				*exit_code = m.code;
			if (reason && reason_size)
				snprintf(reason, reason_size, "%.*s", (int)m.len, (const char *)m.data);
			return AB_ATTACH_EXITED;
		case AB_MSG_ERROR:
			ab_error_set(a->err, 0, "attaching to '%s' refused: %.*s", a->path, (int)m.len,
				     (const char *)m.data);
			a->err->code = ECONNABORTED;
			return -ECONNABORTED;
		case AB_MSG_HELLO:
		case AB_MSG_INPUT:
		case AB_MSG_RESIZE:
		case AB_MSG_DETACH:
			return ab_error_set(a->err, EPROTO, "invalid message from '%s'", a->path);
		}
	}
	return 0;
}

static int attach_loop(struct attach *a, int sig_fd, int *exit_code, char *reason, size_t reason_size)
{
	struct ab_attach_msg hello = { .type = AB_MSG_HELLO, .want_write = !a->read_only };
	int r;

	window_size(a, &a->rows, &a->cols);
	hello.rows = (uint16_t)(a->rows > UINT16_MAX ? UINT16_MAX : a->rows);
	hello.cols = (uint16_t)(a->cols > UINT16_MAX ? UINT16_MAX : a->cols);
	if ((r = attach_queue(a, &hello)) < 0)
		return ab_error_set(a->err, r, "cannot attach to '%s'", a->path);

	for (;;) {
		struct pollfd fds[3];
		nfds_t n = 0;
		int i_sock, i_in = -1, i_sig = -1;

		attach_flush(a);
		i_sock = (int)n;
		fds[n++] = (struct pollfd){ .fd = a->sock, .events = (short)(POLLIN | (a->q_len ? POLLOUT : 0)) };
		/* keys wait until the role is known, and while earlier ones are still queued */
		if (a->welcomed && !a->in_eof && a->q_len < 64 * 1024) {
			i_in = (int)n;
			fds[n++] = (struct pollfd){ .fd = a->in_fd, .events = POLLIN };
		}
		if (sig_fd >= 0) {
			i_sig = (int)n;
			fds[n++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
		}
		if (poll(fds, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return ab_error_set(a->err, errno, "cannot attach to '%s'", a->path);
		}
		if (fds[i_sock].revents) {
			r = read_server(a, exit_code, reason, reason_size);
			if (r != 0)
				return r;
		}
		if (i_sig >= 0 && fds[i_sig].revents) {
			struct signalfd_siginfo si;
			while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				;
			if ((r = send_resize(a)) < 0)
				return ab_error_set(a->err, r, "cannot attach to '%s'", a->path);
		}
		if (i_in >= 0 && fds[i_in].revents) {
			r = read_input(a);
			if (r < 0)
				return ab_error_set(a->err, r, "cannot attach to '%s'", a->path);
			if (r > 0) {
				struct ab_attach_msg bye = { .type = AB_MSG_DETACH };
				if (attach_queue(a, &bye) == 0)
					attach_flush_wait(a, 1000);
				return AB_ATTACH_DETACHED;
			}
		}
	}
}

int ab_attach_client(const char *socket_path, int in_fd, int out_fd, bool read_only, int *exit_code,
		     char *reason, size_t reason_size, struct ab_error *err)
{
	struct attach a = { .path = socket_path, .in_fd = in_fd, .out_fd = out_fd, .read_only = read_only,
			    .err = err };
	_cleanup_close_ int sock = -1, sig_fd = -1;
	struct ab_tty_state tty = { 0 };
	sigset_t winch, old;
	int r;

	if (reason && reason_size)
		reason[0] = '\0';
	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return ab_error_set(err, errno, "cannot connect to '%s'", socket_path);
	if ((r = connect_path(sock, socket_path)) < 0)
		return ab_error_set(err, r, "cannot connect to '%s'", socket_path);
	a.sock = sock;
	a.io = malloc(AB_ATTACH_MAX_MSG);
	if (!a.io)
		return ab_error_set(err, ENOMEM, "cannot attach to '%s'", socket_path);

	sigemptyset(&winch);
	sigaddset(&winch, SIGWINCH);
	sigprocmask(SIG_BLOCK, &winch, &old);
	sig_fd = signalfd(-1, &winch, SFD_NONBLOCK | SFD_CLOEXEC);
	if ((r = ab_tty_make_raw(in_fd, &tty)) < 0) {
		r = ab_error_set(err, r, "cannot put the terminal in raw mode");
	} else {
		r = attach_loop(&a, sig_fd, exit_code, reason, reason_size);
		ab_tty_restore(in_fd, &tty);
	}
	/* SIGWINCH that came meanwhile was for us: not delivered after we leave */
	if (sig_fd >= 0) {
		struct signalfd_siginfo si;
		while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	free(a.q);
	free(a.io);
	return r;
}
