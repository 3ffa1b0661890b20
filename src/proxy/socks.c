/* SOCKS5 (RFC 1928): the greeting and a CONNECT request, read within `len`; each field is
 * judged as soon as its bytes are there, so a bad request is refused before it is whole. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "proxy/socks.h"

#define SOCKS_VERSION 5
#define SOCKS_METHOD_NONE 0x00
#define SOCKS_CMD_CONNECT 0x01
#define SOCKS_ATYP_IPV4 0x01
#define SOCKS_ATYP_DOMAIN 0x03
#define SOCKS_ATYP_IPV6 0x04

int ab_socks_parse_greeting(const uint8_t *buf, size_t len, size_t *consumed)
{
	size_t n;

	if (!buf || !consumed)
		return -EINVAL;
	if (len < 1)
		return 0;
	if (buf[0] != SOCKS_VERSION)
		return -EPROTO;
	if (len < 2)
		return 0;
	n = buf[1];
	if (n == 0)
		return -EACCES;
	if (len < 2 + n)
		return 0;
	if (!memchr(buf + 2, SOCKS_METHOD_NONE, n))
		return -EACCES;
	*consumed = 2 + n;
	return 1;
}

static int refuse(uint8_t *reply_code, uint8_t code, int r)
{
	*reply_code = code;
	return r;
}

int ab_socks_parse_request(const uint8_t *buf, size_t len, struct ab_socks_request *req,
			   size_t *consumed, uint8_t *reply_code)
{
	uint8_t dummy;
	size_t addr_len, need;

	if (!reply_code)
		reply_code = &dummy;
	*reply_code = AB_SOCKS_REP_FAILURE;
	if (!req)
		return -EINVAL;
	memset(req, 0, sizeof(*req));
	if (!buf || !consumed)
		return -EINVAL;

	if (len < 1)
		return 0;
	if (buf[0] != SOCKS_VERSION)
		return refuse(reply_code, AB_SOCKS_REP_FAILURE, -EINVAL);
	if (len < 2)
		return 0;
	if (buf[1] != SOCKS_CMD_CONNECT) /* BIND, UDP ASSOCIATE, anything else */
		return refuse(reply_code, AB_SOCKS_REP_CMD_UNSUPPORTED, -EOPNOTSUPP);
	if (len < 3)
		return 0;
	if (buf[2] != 0x00) /* RSV */
		return refuse(reply_code, AB_SOCKS_REP_FAILURE, -EINVAL);
	if (len < 4)
		return 0;

	switch (buf[3]) {
	case SOCKS_ATYP_IPV4:
		addr_len = 4;
		need = 4 + 4 + 2;
		break;
	case SOCKS_ATYP_IPV6:
		addr_len = 16;
		need = 4 + 16 + 2;
		break;
	case SOCKS_ATYP_DOMAIN:
		if (len < 5)
			return 0;
		addr_len = buf[4];
		if (addr_len == 0)
			return refuse(reply_code, AB_SOCKS_REP_FAILURE, -EINVAL);
		/* A name is judged as its bytes arrive: printable ASCII only (no NUL, no
		 * space, no control byte); the policy judges the rest. */
		for (size_t i = 5; i < len && i < 5 + addr_len; i++)
			if (buf[i] <= 0x20 || buf[i] >= 0x7f)
				return refuse(reply_code, AB_SOCKS_REP_FAILURE, -EINVAL);
		need = 5 + addr_len + 2;
		break;
	default:
		return refuse(reply_code, AB_SOCKS_REP_ATYP_UNSUPPORTED, -EAFNOSUPPORT);
	}
	if (len < need)
		return 0;

	req->port = (uint16_t)((buf[need - 2] << 8) | buf[need - 1]);
	if (req->port == 0)
		return refuse(reply_code, AB_SOCKS_REP_FAILURE, -EINVAL);
	req->cmd = buf[1];
	if (buf[3] == SOCKS_ATYP_DOMAIN) {
		memcpy(req->host, buf + 5, addr_len); /* at most 255 < AB_HOST_MAX */
		req->host[addr_len] = '\0';
	} else if (!inet_ntop(buf[3] == SOCKS_ATYP_IPV4 ? AF_INET : AF_INET6, buf + 4, req->host,
			      sizeof(req->host))) {
		return refuse(reply_code, AB_SOCKS_REP_FAILURE, -EINVAL);
	}
	*consumed = need;
	*reply_code = AB_SOCKS_REP_OK;
	return 1;
}

size_t ab_socks_format_reply(uint8_t out[10], uint8_t rep)
{
	static const uint8_t tail[8] = { 0x00, SOCKS_ATYP_IPV4, 0, 0, 0, 0, 0, 0 };

	out[0] = SOCKS_VERSION;
	out[1] = rep;
	memcpy(out + 2, tail, sizeof(tail));
	return 10;
}
