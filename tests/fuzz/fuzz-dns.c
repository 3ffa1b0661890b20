/* DNS queries: any bytes parse to one question or are refused, never a crash. An
 * answer built for what parsed is well formed: the query's id, QR set, one question
 * (the query's own bytes), at most one record of the size promised, within 512 bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static void check_answer(const uint8_t *query, const struct ab_dns_query *q, int n, size_t rr, int rcode,
			 const uint8_t *out)
{
	if (n < 0)
		__builtin_trap();
	if ((size_t)n != q->question_end + rr || n > AB_DNS_MAX_MSG || get16(out) != q->id ||
	    !(out[2] & 0x80) || (out[3] & 0x0f) != rcode || get16(out + 4) != 1 ||
	    get16(out + 6) != (rr ? 1 : 0) || memcmp(out + 12, query + 12, q->question_end - 12) != 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t v4[4] = { 198, 18, 0, 1 }, v6[16] = { 0xfd };
	uint8_t *buf = malloc(size ? size : 1), out[AB_DNS_MAX_MSG], small[20];
	struct ab_dns_query q;
	int r, n;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	r = ab_dns_parse_query(buf, size, &q);
	if (r == 0) {
		size_t len = strnlen(q.name, sizeof(q.name));
		if (len > 253 || q.question_end < 17 || q.question_end > size)
			__builtin_trap();
		for (size_t i = 0; i < len; i++)
			if ((uint8_t)q.name[i] <= 0x20 || (uint8_t)q.name[i] >= 0x7f ||
			    (q.name[i] >= 'A' && q.name[i] <= 'Z') || (q.name[i] == '.' && (i == 0 || q.name[i - 1] == '.')))
				__builtin_trap();
		if (q.qtype == AB_DNS_TYPE_A) {
			n = ab_dns_build_answer(buf, size, &q, AB_DNS_RCODE_NOERROR, v4, 4, 5, out, sizeof(out));
			check_answer(buf, &q, n, 16, AB_DNS_RCODE_NOERROR, out);
		} else if (q.qtype == AB_DNS_TYPE_AAAA) {
			n = ab_dns_build_answer(buf, size, &q, AB_DNS_RCODE_NOERROR, v6, 16, 5, out, sizeof(out));
			check_answer(buf, &q, n, 28, AB_DNS_RCODE_NOERROR, out);
		}
		n = ab_dns_build_answer(buf, size, &q, AB_DNS_RCODE_NXDOMAIN, NULL, 0, 0, out, sizeof(out));
		check_answer(buf, &q, n, 0, AB_DNS_RCODE_NXDOMAIN, out);
		n = ab_dns_build_answer(buf, size, &q, AB_DNS_RCODE_NOERROR, NULL, 0, 0, out, sizeof(out));
		check_answer(buf, &q, n, 0, AB_DNS_RCODE_NOERROR, out);
		n = ab_dns_build_answer(buf, size, &q, AB_DNS_RCODE_NOERROR, v4, 4, 5, small, sizeof(small));
		if (n != -ENOSPC && n != -EINVAL && n > (int)sizeof(small))
			__builtin_trap();
	} else if (r != -EINVAL && r != -EOPNOTSUPP) {
		__builtin_trap();
	}
	n = ab_dns_build_error(buf, size, AB_DNS_RCODE_FORMERR, out, sizeof(out));
	if (size < 2 ? n != -EINVAL : (n != 12 || out[0] != buf[0] || out[1] != buf[1] || !(out[2] & 0x80)))
		__builtin_trap();
	free(buf);
	return 0;
}
