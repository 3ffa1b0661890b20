/* The DNS server inside a filtered sandbox: parsing one query and building the answer
 * (RFC 1035). Pure; fuzzed. */
#ifndef AB_PROXY_DNS_H
#define AB_PROXY_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AB_DNS_MAX_MSG 512 /* UDP without EDNS: queries and answers stay under this */

#define AB_DNS_TYPE_A 1
#define AB_DNS_TYPE_AAAA 28
#define AB_DNS_CLASS_IN 1

#define AB_DNS_RCODE_NOERROR 0
#define AB_DNS_RCODE_FORMERR 1
#define AB_DNS_RCODE_SERVFAIL 2
#define AB_DNS_RCODE_NXDOMAIN 3
#define AB_DNS_RCODE_NOTIMP 4
#define AB_DNS_RCODE_REFUSED 5

struct ab_dns_query {
	uint16_t id;
	bool recursion_desired;
	char name[256];    /* dotted, lower case, no trailing dot; "" for the root */
	uint16_t qtype;
	uint16_t qclass;
	size_t question_end; /* offset just past the question in the query */
};

/* A standard query (QR=0, OPCODE=0) with exactly one question; compression pointers in
 * the question are refused; additional records (EDNS OPT) are ignored. Returns 0, or
 * -EINVAL (malformed or not a query), -EOPNOTSUPP (another opcode or QDCOUNT != 1). */
int ab_dns_parse_query(const uint8_t *buf, size_t len, struct ab_dns_query *q);

/* An answer to q (the query's bytes are in query/qlen): the header (same id, QR=1, RD
 * copied, RA=1, rcode), the question copied, and when rcode is NOERROR and addr is not
 * NULL one answer record of q->qtype (addr_len 4 for A, 16 for AAAA) with ttl; no
 * answer record otherwise (NODATA or the error). Returns the length or -ENOSPC/-EINVAL. */
int ab_dns_build_answer(const uint8_t *query, size_t qlen, const struct ab_dns_query *q,
			int rcode, const uint8_t *addr, size_t addr_len, uint32_t ttl,
			uint8_t *out, size_t out_size);

/* An error answer (header only, no question) to a query that could not be parsed: the
 * id taken from its first two bytes. Returns 12, or -EINVAL when qlen < 2. */
int ab_dns_build_error(const uint8_t *query, size_t qlen, int rcode, uint8_t *out,
		       size_t out_size);

#endif
