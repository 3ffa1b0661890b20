/* The attach protocol: messages encoded and decoded strictly; a server in this process
 * talking to raw clients (roles, replay, input and resizes of the writer only, exit news,
 * misbehaving and slow clients); and the interactive client against a server in a forked
 * child, over pipes and over a pty.
 *
 * Fixture (under a fresh temporary directory):
 *   s.sock          the server's socket
 *   long.../s.sock  a socket path longer than sun_path
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "lib/attach.h"
#include "shared/cleanup.h"
#include "shared/strutil.h"
#include "tap.h"

static char top[64];
static char sock_path[100];

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- messages ---- */

static bool round_trip(const struct ab_attach_msg *m)
{
	uint8_t buf[AB_ATTACH_MAX_MSG + 1], again[AB_ATTACH_MAX_MSG];
	struct ab_attach_msg d;
	int n = ab_attach_msg_encode(m, buf, sizeof(buf));

	if (n < AB_ATTACH_HEADER_SIZE || ab_attach_msg_decode(buf, (size_t)n, &d) < 0)
		return false;
	if (d.type != m->type || d.want_write != m->want_write || d.is_writer != m->is_writer ||
	    d.rows != m->rows || d.cols != m->cols || d.replay_len != m->replay_len || d.code != m->code ||
	    d.len != m->len || (m->len && memcmp(d.data, m->data, m->len) != 0))
		return false;
	/* re-encoding gives the same bytes, and every shorter or longer packet is refused */
	if (ab_attach_msg_encode(&d, again, sizeof(again)) != n || memcmp(buf, again, (size_t)n) != 0)
		return false;
	for (int k = 0; k < n; k++)
		if (ab_attach_msg_decode(buf, (size_t)k, &d) == 0)
			return false;
	buf[n] = 0;
	return ab_attach_msg_decode(buf, (size_t)n + 1, &d) < 0;
}

/* A raw packet: header with the given type and length field, then the payload. */
static size_t packet(uint8_t *buf, uint8_t type, uint32_t length, const void *payload, size_t n)
{
	buf[0] = type;
	buf[1] = buf[2] = buf[3] = 0;
	memcpy(buf + 4, &length, 4);
	if (n)
		memcpy(buf + 8, payload, n);
	return 8 + n;
}

static void test_messages(void)
{
	static uint8_t big[AB_ATTACH_MAX_PAYLOAD + 1];
	uint8_t buf[AB_ATTACH_MAX_MSG + 16];
	struct ab_attach_msg d;
	char reason65[66];

	memset(big, 'x', sizeof(big));
	memset(reason65, 'r', 65);
	reason65[65] = '\0';
	ok(round_trip(&(struct ab_attach_msg){ .type = AB_MSG_HELLO, .want_write = true, .rows = 40, .cols = 120 }),
	   "HELLO round-trips");
	ok(round_trip(&(struct ab_attach_msg){ .type = AB_MSG_HELLO, .rows = 65535, .cols = 1 }),
	   "HELLO without write round-trips");
	ok(round_trip(&(struct ab_attach_msg){ .type = AB_MSG_INPUT, .data = "ab\0c", .len = 4 }), "INPUT round-trips");
	ok(round_trip(&(struct ab_attach_msg){ .type = AB_MSG_INPUT, .data = big, .len = AB_ATTACH_MAX_PAYLOAD }),
	   "INPUT of 64 KiB round-trips");
	ok(round_trip(&(struct ab_attach_msg){ .type = AB_MSG_RESIZE, .rows = 50, .cols = 200 }), "RESIZE round-trips");
	ok(round_trip(&(struct ab_attach_msg){ .type = AB_MSG_DETACH }), "DETACH round-trips");
	ok(round_trip(&(struct ab_attach_msg){ .type = AB_MSG_WELCOME, .is_writer = true, .replay_len = 65536 }),
	   "WELCOME round-trips");
	ok(round_trip(&(struct ab_attach_msg){ .type = AB_MSG_OUTPUT, .data = "\x1b[H", .len = 3 }),
	   "OUTPUT round-trips");
	ok(round_trip(&(struct ab_attach_msg){ .type = AB_MSG_EXITED, .code = -137, .data = "killed", .len = 6 }),
	   "EXITED round-trips");
	ok(round_trip(&(struct ab_attach_msg){ .type = AB_MSG_EXITED, .code = 0 }), "EXITED without a reason round-trips");
	ok(round_trip(&(struct ab_attach_msg){ .type = AB_MSG_ERROR, .data = "nope", .len = 4 }), "ERROR round-trips");

	/* encoding refuses what decoding would */
	ok(ab_attach_msg_encode(&(struct ab_attach_msg){ .type = AB_MSG_INPUT, .data = "", .len = 0 }, buf,
				sizeof(buf)) == -EINVAL,
	   "encode: empty INPUT");
	ok(ab_attach_msg_encode(&(struct ab_attach_msg){ .type = AB_MSG_OUTPUT, .data = big,
							 .len = AB_ATTACH_MAX_PAYLOAD + 1 },
				buf, sizeof(buf)) == -EINVAL,
	   "encode: OUTPUT over 64 KiB");
	ok(ab_attach_msg_encode(&(struct ab_attach_msg){ .type = AB_MSG_EXITED, .data = reason65, .len = 65 }, buf,
				sizeof(buf)) == -EINVAL,
	   "encode: a reason over 64 bytes");
	ok(ab_attach_msg_encode(&(struct ab_attach_msg){ .type = AB_MSG_EXITED, .data = "a\0b", .len = 3 }, buf,
				sizeof(buf)) == -EINVAL,
	   "encode: a NUL in the reason");
	ok(ab_attach_msg_encode(&(struct ab_attach_msg){ .type = AB_MSG_ERROR, .data = "", .len = 0 }, buf,
				sizeof(buf)) == -EINVAL,
	   "encode: an empty ERROR");
	ok(ab_attach_msg_encode(&(struct ab_attach_msg){ .type = AB_MSG_ERROR, .data = big, .len = 1025 }, buf,
				sizeof(buf)) == -EINVAL,
	   "encode: ERROR over 1024 bytes");
	ok(ab_attach_msg_encode(&(struct ab_attach_msg){ .type = AB_MSG_WELCOME, .replay_len = 65537 }, buf,
				sizeof(buf)) == -EINVAL,
	   "encode: a replay longer than the ring");
	ok(ab_attach_msg_encode(&(struct ab_attach_msg){ .type = (enum ab_attach_type)99 }, buf, sizeof(buf)) ==
		   -EINVAL,
	   "encode: an unknown type");
	ok(ab_attach_msg_encode(&(struct ab_attach_msg){ .type = AB_MSG_HELLO }, buf, 12) == -ENOBUFS,
	   "encode: a buffer too small");

	/* decoding: packets built by hand */
	uint8_t hello_bad[5] = { 2, 24, 0, 80, 0 };
	uint8_t welcome_big[5] = { 1, 0, 0, 0, 0 };
	uint32_t too_big = 65537;
	memcpy(welcome_big + 1, &too_big, 4);
	struct {
		const char *what;
		uint8_t type;
		uint32_t length;
		const void *payload;
		size_t n;
	} bad[] = {
		{ "HELLO of 4 bytes", AB_MSG_HELLO, 4, "\1\0\0\0", 4 },
		{ "HELLO of 6 bytes", AB_MSG_HELLO, 6, "\1\0\0\0\0\0", 6 },
		{ "HELLO with want_write 2", AB_MSG_HELLO, 5, hello_bad, 5 },
		{ "RESIZE of 5 bytes", AB_MSG_RESIZE, 5, "\0\0\0\0\0", 5 },
		{ "DETACH with a payload", AB_MSG_DETACH, 1, "x", 1 },
		{ "WELCOME with is_writer 2", AB_MSG_WELCOME, 5, "\2\0\0\0\0", 5 },
		{ "WELCOME with a replay over 64 KiB", AB_MSG_WELCOME, 5, welcome_big, 5 },
		{ "empty INPUT", AB_MSG_INPUT, 0, NULL, 0 },
		{ "empty OUTPUT", AB_MSG_OUTPUT, 0, NULL, 0 },
		{ "EXITED of 3 bytes", AB_MSG_EXITED, 3, "\0\0\0", 3 },
		{ "EXITED with a NUL in the reason", AB_MSG_EXITED, 6, "\0\0\0\0a\0", 6 },
		{ "EXITED with a reason of 65 bytes", AB_MSG_EXITED, 69, big, 69 },
		{ "empty ERROR", AB_MSG_ERROR, 0, NULL, 0 },
		{ "ERROR with a NUL", AB_MSG_ERROR, 3, "a\0b", 3 },
		{ "ERROR over 1024 bytes", AB_MSG_ERROR, 1025, big, 1025 },
		{ "type 0", 0, 0, NULL, 0 },
		{ "type 5", 5, 0, NULL, 0 },
		{ "type 255", 255, 1, "x", 1 },
		{ "a length longer than the packet", AB_MSG_INPUT, 4, "abc", 3 },
		{ "a length shorter than the packet", AB_MSG_INPUT, 2, "abc", 3 },
		{ "a payload over 64 KiB", AB_MSG_INPUT, AB_ATTACH_MAX_PAYLOAD + 1, big, AB_ATTACH_MAX_PAYLOAD + 1 },
	};
	for (size_t i = 0; i < AB_ELEMENTSOF(bad); i++) {
		size_t n = packet(buf, bad[i].type, bad[i].length, bad[i].payload, bad[i].n);
		ok(ab_attach_msg_decode(buf, n, &d) == -EBADMSG, "decode refuses %s", bad[i].what);
	}
	size_t n = packet(buf, AB_MSG_DETACH, 0, NULL, 0);
	ok(ab_attach_msg_decode(buf, n, &d) == 0 && d.type == AB_MSG_DETACH, "a DETACH packet decodes");
	buf[2] = 1;
	ok(ab_attach_msg_decode(buf, n, &d) == -EBADMSG, "decode refuses nonzero padding");
	ok(ab_attach_msg_decode(buf, 7, &d) == -EBADMSG && ab_attach_msg_decode(buf, 0, &d) == -EBADMSG,
	   "decode refuses a packet shorter than the header");
	uint32_t huge = 0xffffffffu;
	packet(buf, AB_MSG_INPUT, huge, NULL, 0);
	ok(ab_attach_msg_decode(buf, 8, &d) == -EBADMSG, "decode refuses a length of 4 GiB");
}

/* ---- raw clients of an in-process server ---- */

struct rec {
	char input[8192];
	size_t input_len;
	char resizes[256];
};

static void rec_input(const void *data, size_t len, void *ctx)
{
	struct rec *r = ctx;
	if (r->input_len + len < sizeof(r->input)) {
		memcpy(r->input + r->input_len, data, len);
		r->input_len += len;
	}
}

static void rec_resize(unsigned rows, unsigned cols, void *ctx)
{
	struct rec *r = ctx;
	size_t used = strlen(r->resizes);
	snprintf(r->resizes + used, sizeof(r->resizes) - used, "%s%ux%u", used ? " " : "", rows, cols);
}

/* Runs the server's side for about ms milliseconds. */
static void pump(struct ab_attach_server *s, const struct ab_attach_callbacks *cb, int ms)
{
	int64_t end = now_ms() + ms;

	do {
		struct pollfd fds[AB_ATTACH_SERVER_MAX_FDS];
		int n = ab_attach_server_fds(s, fds, AB_ELEMENTSOF(fds));
		if (n < 0 || poll(fds, (nfds_t)n, ms ? 10 : 0) < 0)
			return;
		ab_attach_server_handle(s, fds, (size_t)n, cb);
	} while (now_ms() < end);
}

/* A socket file whose server is gone: bound, never listening, closed. */
static void dead_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		printf("# bind %s: %m\n", path);
	if (fd >= 0)
		close(fd);
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		printf("# connect %s: %m\n", path);
		close(fd);
		return -1;
	}
	return fd;
}

static bool raw_send(int fd, const struct ab_attach_msg *m)
{
	uint8_t buf[AB_ATTACH_MAX_MSG];
	int n = ab_attach_msg_encode(m, buf, sizeof(buf));
	return n > 0 && send(fd, buf, (size_t)n, MSG_NOSIGNAL) == n;
}

static bool raw_hello(int fd, bool want_write, uint16_t rows, uint16_t cols)
{
	return raw_send(fd, &(struct ab_attach_msg){ .type = AB_MSG_HELLO, .want_write = want_write, .rows = rows,
						     .cols = cols });
}

/* A message raw_output read past, kept for the next raw_recv on that socket. */
static int held_fd = -1;
static uint8_t held_buf[AB_ATTACH_MAX_MSG];
static size_t held_len;

/* The next message within ms: 1, 0 at EOF, -1 on timeout or a bad packet. */
static int raw_recv(int fd, struct ab_attach_msg *m, uint8_t *buf, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (held_fd == fd) {
		held_fd = -1;
		memcpy(buf, held_buf, held_len);
		return ab_attach_msg_decode(buf, held_len, m) == 0 ? 1 : -1;
	}
	if (poll(&p, 1, ms) <= 0)
		return -1;
	n = recv(fd, buf, AB_ATTACH_MAX_MSG, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return 0;
	if (n < 0 || ab_attach_msg_decode(buf, (size_t)n, m) < 0)
		return -1;
	return 1;
}

/* Reads OUTPUT messages until something else comes (kept for raw_recv) or nothing comes
 * for ms; their bytes go to out. */
static size_t raw_output(int fd, char *out, size_t size, int ms)
{
	static uint8_t buf[AB_ATTACH_MAX_MSG];
	struct ab_attach_msg m;
	size_t len = 0;

	while (raw_recv(fd, &m, buf, ms) == 1) {
		if (m.type != AB_MSG_OUTPUT) {
			held_fd = fd;
			held_len = AB_ATTACH_HEADER_SIZE + (m.type == AB_MSG_EXITED ? 4 + m.len : m.len);
			memcpy(held_buf, buf, held_len);
			break;
		}
		if (len + m.len <= size) {
			memcpy(out + len, m.data, m.len);
			len += m.len;
		}
	}
	return len;
}

static void test_server(void)
{
	static uint8_t buf[AB_ATTACH_MAX_MSG];
	static char out[128 * 1024];
	struct rec rec = { 0 };
	struct ab_attach_callbacks cb = { .input = rec_input, .resize = rec_resize, .ctx = &rec };
	struct ab_attach_server *s = NULL;
	struct ab_error err = { 0 };
	struct ab_attach_msg m;
	struct stat st;
	int a, b, c, e, f;

	ok(ab_attach_server_open(&s, sock_path, &err) == 0, "the server listens (%s)", err.msg);
	if (!s)
		return;
	ok(stat(sock_path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600,
	   "its socket is private (0%o)", st.st_mode & 0777);
	ab_attach_server_output(s, "before ", 7);

	/* the first client asking to write becomes the writer, and sees what came before */
	a = raw_connect(sock_path);
	ok(raw_hello(a, true, 30, 100), "client A says HELLO, wanting to write");
	pump(s, &cb, 50);
	ok(raw_recv(a, &m, buf, 1000) == 1 && m.type == AB_MSG_WELCOME && m.is_writer && m.replay_len == 7,
	   "A is welcomed as the writer, with 7 bytes of replay");
	ok(raw_output(a, out, sizeof(out), 100) == 7 && memcmp(out, "before ", 7) == 0, "A gets the replay");
	is_str(rec.resizes, "30x100", "A's window size applies");

	/* the second one only reads, and is told so */
	b = raw_connect(sock_path);
	raw_hello(b, true, 50, 200);
	pump(s, &cb, 50);
	ok(raw_recv(b, &m, buf, 1000) == 1 && m.type == AB_MSG_WELCOME && !m.is_writer && m.replay_len == 7,
	   "B asked to write too, and is welcomed as a reader");
	ok(raw_output(b, out, sizeof(out), 100) == 7, "B gets the replay");
	is_str(rec.resizes, "30x100", "B's window size does not apply");
	ok(ab_attach_server_clients(s) == 2, "two clients");

	ab_attach_server_output(s, "live", 4);
	ok(raw_output(a, out, sizeof(out), 100) == 4 && memcmp(out, "live", 4) == 0, "A gets live output");
	ok(raw_output(b, out, sizeof(out), 100) == 4 && memcmp(out, "live", 4) == 0, "B gets the same output");

	raw_send(b, &(struct ab_attach_msg){ .type = AB_MSG_INPUT, .data = "from-b", .len = 6 });
	raw_send(b, &(struct ab_attach_msg){ .type = AB_MSG_RESIZE, .rows = 60, .cols = 70 });
	raw_send(a, &(struct ab_attach_msg){ .type = AB_MSG_INPUT, .data = "from-a", .len = 6 });
	raw_send(a, &(struct ab_attach_msg){ .type = AB_MSG_RESIZE, .rows = 33, .cols = 77 });
	raw_send(a, &(struct ab_attach_msg){ .type = AB_MSG_RESIZE, .rows = 0, .cols = 77 });
	pump(s, &cb, 50);
	ok(rec.input_len == 6 && memcmp(rec.input, "from-a", 6) == 0, "only the writer's input is delivered (%.*s)",
	   (int)rec.input_len, rec.input);
	is_str(rec.resizes, "30x100 33x77", "only the writer's (non-zero) resize is delivered");
	ok(ab_attach_server_clients(s) == 2, "the reader's input is ignored, not punished");

	/* clients that break the protocol are dropped, the others stay */
	c = raw_connect(sock_path);
	uint8_t junk[12] = { AB_MSG_HELLO, 1, 0, 0, 4, 0, 0, 0, 1, 2, 3, 4 };
	send(c, junk, sizeof(junk), MSG_NOSIGNAL);
	pump(s, &cb, 50);
	ok(raw_recv(c, &m, buf, 1000) == 1 && m.type == AB_MSG_ERROR && raw_recv(c, &m, buf, 1000) == 0,
	   "a malformed packet: ERROR, then the server hangs up");
	close(c);
	c = raw_connect(sock_path);
	raw_send(c, &(struct ab_attach_msg){ .type = AB_MSG_INPUT, .data = "sneaky", .len = 6 });
	pump(s, &cb, 50);
	ok(raw_recv(c, &m, buf, 1000) == 1 && m.type == AB_MSG_ERROR && raw_recv(c, &m, buf, 1000) == 0,
	   "INPUT before HELLO: dropped");
	close(c);
	c = raw_connect(sock_path);
	raw_hello(c, false, 0, 0);
	raw_hello(c, false, 0, 0);
	pump(s, &cb, 50);
	ok(raw_recv(c, &m, buf, 1000) == 1 && m.type == AB_MSG_WELCOME, "HELLO is welcomed");
	raw_output(c, out, sizeof(out), 50);
	ok(raw_recv(c, &m, buf, 1000) == 1 && m.type == AB_MSG_ERROR && raw_recv(c, &m, buf, 1000) == 0,
	   "HELLO twice: dropped");
	close(c);
	c = raw_connect(sock_path);
	raw_hello(c, false, 0, 0);
	raw_send(c, &(struct ab_attach_msg){ .type = AB_MSG_OUTPUT, .data = "x", .len = 1 });
	pump(s, &cb, 50);
	close(c);
	c = raw_connect(sock_path);
	raw_hello(c, false, 0, 0);
	pump(s, &cb, 50);
	close(c); /* hangs up without DETACH */
	pump(s, &cb, 50);
	ok(ab_attach_server_clients(s) == 2 && rec.input_len == 6, "after all that, A and B remain");

	/* the writer leaves: the next client asking to write takes over */
	raw_send(a, &(struct ab_attach_msg){ .type = AB_MSG_DETACH });
	pump(s, &cb, 50);
	ok(raw_recv(a, &m, buf, 1000) == 0 && ab_attach_server_clients(s) == 1, "A detaches");
	close(a);
	e = raw_connect(sock_path);
	raw_hello(e, true, 0, 0);
	pump(s, &cb, 50);
	ok(raw_recv(e, &m, buf, 1000) == 1 && m.type == AB_MSG_WELCOME && m.is_writer && m.replay_len == 11,
	   "E becomes the writer once A is gone");
	raw_output(e, out, sizeof(out), 50);
	is_str(rec.resizes, "30x100 33x77", "a writer without a terminal sends no size");

	/* the end: every client hears it, then the server hangs up */
	ab_attach_server_exited(s, 137, "killed");
	ok(ab_attach_server_clients(s) == 0, "after EXITED no client remains");
	ok(raw_recv(b, &m, buf, 1000) == 1 && m.type == AB_MSG_EXITED && m.code == 137 && m.len == 6 &&
		   memcmp(m.data, "killed", 6) == 0,
	   "B hears the exit code and reason");
	ok(raw_recv(b, &m, buf, 1000) == 0, "then B's connection ends");
	ok(raw_recv(e, &m, buf, 1000) == 1 && m.type == AB_MSG_EXITED && m.code == 137, "E hears it too");
	close(b);
	close(e);

	/* a client coming late still gets the replay and the news */
	f = raw_connect(sock_path);
	raw_hello(f, true, 24, 80);
	pump(s, &cb, 50);
	ok(raw_recv(f, &m, buf, 1000) == 1 && m.type == AB_MSG_WELCOME && !m.is_writer && m.replay_len == 11,
	   "a client after the end is welcomed as a reader");
	ok(raw_output(f, out, sizeof(out), 100) == 11 && memcmp(out, "before live", 11) == 0,
	   "with the replay");
	ok(raw_recv(f, &m, buf, 1000) == 1 && m.type == AB_MSG_EXITED && m.code == 137,
	   "and the exit");
	ok(raw_recv(f, &m, buf, 1000) == 0 && ab_attach_server_clients(s) == 0, "and is let go");
	close(f);

	ab_attach_server_close(s);
	ok(access(sock_path, F_OK) < 0, "closing removes the socket");
}

static void test_replay_ring(void)
{
	static uint8_t buf[AB_ATTACH_MAX_MSG];
	static char out[128 * 1024], all[200 * 1024];
	struct ab_attach_server *s = NULL;
	struct ab_error err = { 0 };
	struct ab_attach_msg m;
	size_t total = 0;
	int fd;

	if (ab_attach_server_open(&s, sock_path, &err) < 0) {
		ok(0, "open (%s)", err.msg);
		return;
	}
	/* pieces of every size, so that the ring wraps at odd places */
	for (size_t piece = 1; total + piece < sizeof(all); piece = piece * 3 + 7) {
		for (size_t i = 0; i < piece; i++)
			all[total + i] = (char)('a' + (total + i) % 23);
		ab_attach_server_output(s, all + total, piece);
		total += piece;
	}
	fd = raw_connect(sock_path);
	raw_hello(fd, false, 0, 0);
	pump(s, NULL, 50);
	ok(raw_recv(fd, &m, buf, 1000) == 1 && m.type == AB_MSG_WELCOME && m.replay_len == AB_ATTACH_REPLAY_SIZE,
	   "the replay is the last 64 KiB (%u)", m.replay_len);
	size_t n = raw_output(fd, out, sizeof(out), 100);
	ok(n == AB_ATTACH_REPLAY_SIZE && memcmp(out, all + total - n, n) == 0,
	   "and holds exactly the newest output (%zu of %zu)", n, total);
	close(fd);

	/* a replay that starts inside a character starts at the next one */
	memset(all, 'x', AB_ATTACH_REPLAY_SIZE);
	ab_attach_server_output(s, "\xe2\x82\xac", 3);
	ab_attach_server_output(s, all, AB_ATTACH_REPLAY_SIZE - 3);
	ab_attach_server_output(s, "!", 1); /* the ring now starts with 0x82 0xac */
	fd = raw_connect(sock_path);
	raw_hello(fd, false, 0, 0);
	pump(s, NULL, 50);
	ok(raw_recv(fd, &m, buf, 1000) == 1 && m.type == AB_MSG_WELCOME && m.replay_len == AB_ATTACH_REPLAY_SIZE - 2,
	   "a replay skips the tail of a cut character (%u)", m.replay_len);
	n = raw_output(fd, out, sizeof(out), 100);
	ok(n == AB_ATTACH_REPLAY_SIZE - 2 && out[0] == 'x' && out[n - 1] == '!', "and ends with the newest output");
	close(fd);
	ab_attach_server_close(s);
}

static void test_slow_client(void)
{
	static uint8_t buf[AB_ATTACH_MAX_MSG];
	static char chunk[16 * 1024];
	struct ab_attach_server *s = NULL;
	struct ab_error err = { 0 };
	struct ab_attach_msg m;
	size_t got = 0, sent = 0;
	bool in_order = true;
	int64_t t0, worst = 0;
	int slow, fast;

	if (ab_attach_server_open(&s, sock_path, &err) < 0) {
		ok(0, "open (%s)", err.msg);
		return;
	}
	slow = raw_connect(sock_path);
	fast = raw_connect(sock_path);
	raw_hello(slow, false, 0, 0);
	raw_hello(fast, false, 0, 0);
	pump(s, NULL, 50);
	raw_recv(fast, &m, buf, 1000);
	ok(ab_attach_server_clients(s) == 2, "a client that never reads, and one that does");
	t0 = now_ms();
	for (int i = 0; i < 256; i++) {
		int64_t t = now_ms();
		memset(chunk, 'A' + i % 26, sizeof(chunk));
		ab_attach_server_output(s, chunk, sizeof(chunk));
		sent += sizeof(chunk);
		if (now_ms() - t > worst)
			worst = now_ms() - t;
		/* the reading client keeps up; the server sends it what was queued */
		for (;;) {
			ssize_t n = recv(fast, buf, sizeof(buf), MSG_DONTWAIT);
			if (n <= 0)
				break;
			if (ab_attach_msg_decode(buf, (size_t)n, &m) < 0 || m.type != AB_MSG_OUTPUT) {
				in_order = false;
				continue;
			}
			for (size_t k = 0; k < m.len; k++)
				if (((const char *)m.data)[k] != 'A' + (int)((got + k) / sizeof(chunk)) % 26)
					in_order = false;
			got += m.len;
		}
		pump(s, NULL, 0);
	}
	while (got < sent) {
		pump(s, NULL, 10);
		ssize_t n = recv(fast, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0 && now_ms() - t0 > 3000)
			break;
		if (n > 0 && ab_attach_msg_decode(buf, (size_t)n, &m) == 0)
			got += m.len;
	}
	ok(now_ms() - t0 < 3000 && worst < 200, "4 MiB of output never blocked the server (worst call %lld ms)",
	   (long long)worst);
	ok(ab_attach_server_clients(s) == 1, "the client that never reads was dropped");
	ok(got == sent && in_order, "the reading client got all of it, in order (%zu of %zu)", got, sent);
	size_t backlog = 0;
	while (raw_recv(slow, &m, buf, 100) == 1)
		backlog += m.len;
	ok(raw_recv(slow, &m, buf, 100) == 0 && backlog < sent, "the dropped client sees its connection end (%zu)",
	   backlog);
	close(slow);
	close(fast);
	ab_attach_server_close(s);
}

static void test_server_limits(void)
{
	static uint8_t buf[AB_ATTACH_MAX_MSG];
	struct ab_attach_server *s = NULL, *s2 = NULL;
	struct ab_error err = { 0 };
	struct ab_attach_msg m;
	struct pollfd fds[4];
	int fd[AB_ATTACH_MAX_CLIENTS + 1];
	char path[512];

	if (ab_attach_server_open(&s, sock_path, &err) < 0) {
		ok(0, "open (%s)", err.msg);
		return;
	}
	ok(ab_attach_server_open(&s2, sock_path, &err) == -EADDRINUSE && !s2,
	   "a second server on a live socket: -EADDRINUSE");
	ok(strstr(err.msg, sock_path) != NULL, "which names the socket (%s)", err.msg);
	for (int i = 0; i <= AB_ATTACH_MAX_CLIENTS; i++) {
		fd[i] = raw_connect(sock_path);
		pump(s, NULL, 0);
	}
	pump(s, NULL, 50);
	ok(ab_attach_server_clients(s) == AB_ATTACH_MAX_CLIENTS, "32 clients at most");
	ok(raw_recv(fd[AB_ATTACH_MAX_CLIENTS], &m, buf, 1000) == 1 && m.type == AB_MSG_ERROR,
	   "the 33rd is told why it is refused");
	ok(ab_attach_server_fds(s, fds, AB_ELEMENTSOF(fds)) == -ENOBUFS, "fds: too small an array is -ENOBUFS");
	for (int i = 0; i <= AB_ATTACH_MAX_CLIENTS; i++)
		close(fd[i]);
	pump(s, NULL, 50);
	ok(ab_attach_server_clients(s) == 0, "hang-ups free the slots");
	ab_attach_server_close(s);

	/* a stale socket (its server died) is replaced; a file that is no socket is not */
	dead_socket(sock_path);
	ok(ab_attach_server_open(&s, sock_path, &err) == 0, "a stale socket is replaced (%s)", err.msg);
	ab_attach_server_close(s);
	int file = open(sock_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(file);
	s = NULL;
	ok(ab_attach_server_open(&s, sock_path, &err) == -EEXIST && !s, "a regular file in the way is left alone");
	unlink(sock_path);

	/* a path longer than sun_path */
	snprintf(path, sizeof(path), "%s/a-directory-name-long-enough-to-push-the-path-past-sun-path-%0100d", top,
		 0);
	mkdir(path, 0700);
	snprintf(path + strlen(path), sizeof(path) - strlen(path), "/s.sock");
	ok(strlen(path) > sizeof(((struct sockaddr_un *)0)->sun_path), "a socket path of %zu bytes", strlen(path));
	ok(ab_attach_server_open(&s, path, &err) == 0, "the server listens there too (%s)", err.msg);
	if (s) {
		char dir[512], via[120];
		snprintf(dir, sizeof(dir), "%s", path);
		*strrchr(dir, '/') = '\0';
		int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		snprintf(via, sizeof(via), "/proc/self/fd/%d/s.sock", dfd);
		int c = raw_connect(via);
		raw_hello(c, true, 0, 0);
		pump(s, NULL, 50);
		ok(raw_recv(c, &m, buf, 1000) == 1 && m.type == AB_MSG_WELCOME, "and a client reaches it");
		close(c);
		close(dfd);
		ab_attach_server_close(s);
		ok(access(path, F_OK) < 0, "closing removes the long socket");
	}
}

/* ---- the interactive client against a server in a child ---- */

enum scenario { SC_PIPES, SC_SPLIT, SC_EXIT, SC_LATE, SC_LOST, SC_TTY };

struct child {
	enum scenario sc;
	struct ab_attach_server *s;
	char input[4096];
	size_t input_len;
	char resizes[256];
	int in_w;    /* the write end of the client's input (SPLIT), or the pty master (TTY) */
	pid_t parent;
	bool quit;
	int resize_count;
};

static void child_input(const void *data, size_t len, void *ctx)
{
	struct child *c = ctx;
	char echo[64];

	if (c->input_len + len <= sizeof(c->input)) {
		memcpy(c->input + c->input_len, data, len);
		c->input_len += len;
	}
	snprintf(echo, sizeof(echo), "[got %zu]", len);
	ab_attach_server_output(c->s, echo, strlen(echo));
	if (c->sc == SC_SPLIT && memchr(data, 'z', len) && write(c->in_w, "\x11", 1) != 1)
		_exit(3);
	if (c->sc == SC_EXIT && memmem(c->input, c->input_len, "quit", 4))
		c->quit = true;
	if (c->sc == SC_TTY && memchr(data, 'j', len)) {
		struct winsize ws = { .ws_row = 30, .ws_col = 100 };
		ioctl(c->in_w, TIOCSWINSZ, &ws);
		kill(c->parent, SIGWINCH);
	}
}

static void child_resize(unsigned rows, unsigned cols, void *ctx)
{
	struct child *c = ctx;
	size_t used = strlen(c->resizes);

	snprintf(c->resizes + used, sizeof(c->resizes) - used, "%s%ux%u", used ? " " : "", rows, cols);
	if (c->sc == SC_TTY && ++c->resize_count == 1 && write(c->in_w, "k\x10j", 3) != 3)
		_exit(3);
	if (c->sc == SC_TTY && c->resize_count == 2 && write(c->in_w, "\x10\x11", 2) != 2)
		_exit(3);
}

/* The child: serves until its one client is gone, then reports what it saw on res_fd as
 * "IN:<hex>;RS:<resizes>;". */
static void child_serve(struct child *c, int ready_fd, int res_fd)
{
	struct ab_attach_callbacks cb = { .input = child_input, .resize = child_resize, .ctx = c };
	struct ab_error err;
	int64_t end = now_ms() + 8000, seen_at = 0;
	bool ended = false;

	if (ab_attach_server_open(&c->s, sock_path, &err) < 0)
		_exit(2);
	ab_attach_server_output(c->s, "greeting ", 9);
	if (write(ready_fd, "R", 1) != 1)
		_exit(2);
	while (now_ms() < end) {
		struct pollfd fds[AB_ATTACH_SERVER_MAX_FDS];
		int n = ab_attach_server_fds(c->s, fds, AB_ELEMENTSOF(fds));
		poll(fds, (nfds_t)n, 10);
		ab_attach_server_handle(c->s, fds, (size_t)n, &cb);
		if (!seen_at && ab_attach_server_clients(c->s))
			seen_at = now_ms();
		if (c->quit && !ended) {
			ab_attach_server_exited(c->s, 3, "exited");
			ended = true;
		}
		if (c->sc == SC_LATE && seen_at && !ended && now_ms() - seen_at > 150) {
			ab_attach_server_output(c->s, "late", 4);
			ab_attach_server_exited(c->s, 0, "oom");
			ended = true;
		}
		if (c->sc == SC_LOST && seen_at && now_ms() - seen_at > 150)
			_exit(0); /* gone without a word */
		if (seen_at && !ab_attach_server_clients(c->s))
			break;
	}
	char report[16384];
	size_t k = (size_t)snprintf(report, sizeof(report), "IN:");
	for (size_t i = 0; i < c->input_len && k + 3 < sizeof(report); i++)
		k += (size_t)snprintf(report + k, sizeof(report) - k, "%02x", (unsigned char)c->input[i]);
	k += (size_t)snprintf(report + k, sizeof(report) - k, ";RS:%s;", c->resizes);
	if (ab_write_all(res_fd, report, k) < 0)
		_exit(2);
	ab_attach_server_close(c->s);
	_exit(0);
}

struct run {
	int rc;
	int code;
	char reason[80];
	char report[16384];
	char out[16384];
	size_t out_len;
	struct ab_error err;
};

static void hex(char *out, size_t size, const char *bytes, size_t n)
{
	out[0] = '\0';
	for (size_t i = 0; i < n && 2 * i + 3 <= size; i++)
		snprintf(out + 2 * i, size - 2 * i, "%02x", (unsigned char)bytes[i]);
}

/* Starts the child's server, runs the client with in_fd (or a pipe fed `typed` and then
 * closed when close_input), and collects everything. */
static void run_client(enum scenario sc, const char *typed, size_t typed_len, bool close_input, bool read_only,
		       int tty_master, int tty_slave, struct run *r)
{
	int ready[2], res[2], in[2], out[2];
	pid_t pid;
	char ch;

	memset(r, 0, sizeof(*r));
	r->code = -1;
	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0 || pipe2(in, O_CLOEXEC) < 0 ||
	    pipe2(out, O_CLOEXEC) < 0)
		abort();
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct child c = { .sc = sc, .parent = getppid(), .in_w = sc == SC_TTY ? tty_master : in[1] };
		close(ready[0]);
		close(res[0]);
		close(in[0]);
		close(out[0]);
		close(out[1]);
		if (sc != SC_SPLIT)
			close(in[1]);
		if (tty_slave >= 0)
			close(tty_slave);
		child_serve(&c, ready[1], res[1]);
	}
	close(ready[1]);
	close(res[1]);
	if (read(ready[0], &ch, 1) != 1)
		printf("# the server child did not start\n");
	close(ready[0]);
	if (typed_len && ab_write_all(in[1], typed, typed_len) < 0)
		printf("# cannot type: %m\n");
	if (close_input) {
		close(in[1]);
		in[1] = -1;
	}
	r->rc = ab_attach_client(sock_path, tty_slave >= 0 ? tty_slave : in[0], out[1], read_only, &r->code,
				 r->reason, sizeof(r->reason), &r->err);
	close(out[1]);
	if (in[1] >= 0)
		close(in[1]);
	close(in[0]);
	for (ssize_t n; (n = read(out[0], r->out + r->out_len, sizeof(r->out) - 1 - r->out_len)) > 0;)
		r->out_len += (size_t)n;
	close(out[0]);
	size_t k = 0;
	for (ssize_t n; (n = read(res[0], r->report + k, sizeof(r->report) - 1 - k)) > 0;)
		k += (size_t)n;
	r->report[k] = '\0';
	close(res[0]);
	waitpid(pid, NULL, 0);
}

static bool got_input(const struct run *r, const char *want, size_t len)
{
	char line[8300];
	snprintf(line, sizeof(line), "IN:");
	hex(line + 3, sizeof(line) - 3, want, len);
	strcat(line, ";");
	return strncmp(r->report, line, strlen(line)) == 0;
}

static void test_client(void)
{
	struct run r;

	/* detach keys; a Ctrl-p followed by anything else goes through as typed; all typed at
	 * once, so the client may leave before the server has even sent the replay: what was
	 * typed before the keys still arrives */
	const char typed[] = "hello \x10x \x10\x10y\x10\x11" "after";
	run_client(SC_PIPES, typed, sizeof(typed) - 1, false, false, -1, -1, &r);
	ok(r.rc == AB_ATTACH_DETACHED, "Ctrl-p Ctrl-q detaches (%d: %s)", r.rc, r.err.msg);
	ok(got_input(&r, "hello \x10x \x10\x10y", 12), "everything before it was sent, lone Ctrl-p included (%s)",
	   r.report);

	/* the detach sequence split across two reads; the second comes once the server has
	 * answered the first */
	run_client(SC_SPLIT, "z\x10", 2, false, false, -1, -1, &r);
	ok(r.rc == AB_ATTACH_DETACHED && got_input(&r, "z", 1),
	   "Ctrl-p and Ctrl-q in separate reads still detach, sending neither (%d %s)", r.rc, r.report);
	ok(r.out_len == 16 && memcmp(r.out, "greeting [got 1]", 16) == 0,
	   "the replay, then the output, were shown (%.*s)", (int)r.out_len, r.out);

	/* read-only: nothing typed is sent, the keys still detach */
	run_client(SC_PIPES, "ls\r\x10\x11", 5, false, true, -1, -1, &r);
	ok(r.rc == AB_ATTACH_DETACHED && got_input(&r, "", 0), "a read-only client sends no input (%s)", r.report);

	/* the sandbox exits while attached */
	run_client(SC_EXIT, "quit", 4, false, false, -1, -1, &r);
	ok(r.rc == AB_ATTACH_EXITED && r.code == 3 && strcmp(r.reason, "exited") == 0,
	   "EXITED ends the attach with its code and reason (%d, %d, %s)", r.rc, r.code, r.reason);
	ok(r.out_len == 16 && memcmp(r.out, "greeting [got 4]", 16) == 0, "output came before (%.*s)",
	   (int)r.out_len, r.out);

	/* input at EOF from the start: output still comes */
	run_client(SC_LATE, NULL, 0, true, false, -1, -1, &r);
	ok(r.rc == AB_ATTACH_EXITED && r.code == 0 && strcmp(r.reason, "oom") == 0,
	   "EOF on input keeps the output going until the end (%d %s: %s)", r.rc, r.reason, r.err.msg);
	ok(r.out_len == 13 && memcmp(r.out, "greeting late", 13) == 0, "late output arrived (%.*s)", (int)r.out_len,
	   r.out);

	/* the server vanishes */
	run_client(SC_LOST, NULL, 0, false, false, -1, -1, &r);
	ok(r.rc == AB_ATTACH_LOST, "a server gone without a word: AB_ATTACH_LOST (%d)", r.rc);
	unlink(sock_path);

	/* no server */
	struct ab_error err = { 0 };
	int code = -1;
	char reason[16];
	ok(ab_attach_client(sock_path, 0, 1, false, &code, reason, sizeof(reason), &err) == -ENOENT,
	   "no socket: -ENOENT");
	ok(strstr(err.msg, "'") && strstr(err.msg, "s.sock"), "which names the socket (%s)", err.msg);
	dead_socket(sock_path);
	ok(ab_attach_client(sock_path, 0, 1, false, &code, reason, sizeof(reason), &err) == -ECONNREFUSED,
	   "a socket nobody listens on: -ECONNREFUSED (%s)", err.msg);
	unlink(sock_path);
}

static void test_client_tty(void)
{
	struct termios before, after;
	struct winsize ws = { .ws_row = 24, .ws_col = 80 };
	sigset_t mask;
	struct run r;
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC), slave = -1;

	if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
	    (slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
		ok(1, "the client on a terminal # SKIP no pty: %s", strerror(errno));
		return;
	}
	ioctl(master, TIOCSWINSZ, &ws);
	tcgetattr(slave, &before);
	/* the child types "k^Pj" once it has the size (possible only in raw mode: no newline),
	 * then resizes the terminal and signals us, then types the detach keys */
	run_client(SC_TTY, NULL, 0, false, false, master, slave, &r);
	ok(r.rc == AB_ATTACH_DETACHED, "on a terminal: detached (%d: %s)", r.rc, r.err.msg);
	ok(got_input(&r, "k\x10j", 3), "raw keys reached the sandbox (%s)", r.report);
	ok(strstr(r.report, "RS:24x80 30x100;") != NULL, "the window size, then SIGWINCH's new size, applied (%s)",
	   r.report);
	tcgetattr(slave, &after);
	ok(after.c_lflag == before.c_lflag && after.c_iflag == before.c_iflag && after.c_oflag == before.c_oflag,
	   "the terminal's mode is restored");
	sigprocmask(SIG_SETMASK, NULL, &mask);
	ok(!sigismember(&mask, SIGWINCH), "SIGWINCH is unblocked again");
	close(slave);
	close(master);
}

/* ---- only the server's own user (or root) may attach ---- */

/* In a child as uid: connects, says HELLO; 0 when welcomed, 1 when refused, 2 when the
 * connection itself failed. */
static int peer_client(const char *path, uid_t uid)
{
	static uint8_t buf[AB_ATTACH_MAX_MSG];
	struct ab_attach_msg m;
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		if (setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
			_exit(3);
		int fd = raw_connect(path);
		if (fd < 0)
			_exit(2);
		if (!raw_hello(fd, true, 24, 80))
			_exit(1);
		_exit(raw_recv(fd, &m, buf, 2000) == 1 && m.type == AB_MSG_WELCOME ? 0 : 1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static void test_peer_check(void)
{
	char dir[600], path[700];
	int ready[2];
	pid_t server;
	char c;

	if (geteuid() != 0) {
		ok(1, "another user is refused # SKIP needs root to play two users");
		return;
	}
	snprintf(dir, sizeof(dir), "%s/peer", top);
	snprintf(path, sizeof(path), "%s/p.sock", dir);
	if (mkdir(dir, 0777) < 0 || chmod(dir, 0777) < 0 || chmod(top, 0755) < 0 || pipe(ready) < 0) {
		ok(0, "set up the peer test: %s", strerror(errno));
		return;
	}
	server = fork();
	if (server == 0) {
		struct ab_attach_server *srv = NULL;
		struct ab_error err = { 0 };
		close(ready[0]);
		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0 ||
		    ab_attach_server_open(&srv, path, &err) < 0)
			_exit(1);
		/* opened up to everyone, so that only the server's own check stands */
		chmod(path, 0666);
		(void)!write(ready[1], "x", 1);
		for (;;)
			pump(srv, NULL, 100);
	}
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1) {
		ok(0, "the peer test's server started");
		close(ready[0]);
		waitpid(server, NULL, 0);
		return;
	}
	close(ready[0]);
	ok(peer_client(path, 65534) == 0, "a client of the server's own user is welcomed");
	ok(peer_client(path, 65533) == 1, "a client of another user is refused, even on a socket open to all");
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
}

int main(void)
{
	char cmd[300];

	snprintf(top, sizeof(top), "/tmp/ab-test-attach.XXXXXX");
	if (!mkdtemp(top)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sock_path, sizeof(sock_path), "%s/s.sock", top);
	signal(SIGPIPE, SIG_IGN);
	alarm(60);
	test_messages();
	test_server();
	test_replay_ring();
	test_slow_client();
	test_server_limits();
	test_client();
	test_client_tty();
	test_peer_check();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		printf("# cannot remove %s\n", top);
	return tap_done();
}
