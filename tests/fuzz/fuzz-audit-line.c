/* The audit log, both ways: any bytes read back as a record or a refusal, never a crash;
 * and any bytes as a host name (or a rule, a reason) still format to one line of strict
 * JSON that reads back. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_record(const struct ab_audit_record *rec)
{
	const char *fields[] = { rec->time, rec->event, rec->via, rec->method, rec->host, rec->addr,
				 rec->decision, rec->action, rec->rule, rec->reason };

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		for (const unsigned char *p = (const unsigned char *)fields[i]; *p; p++)
			if (*p < 0x20 || *p == 0x7f)
				abort(); /* a control character would reach the terminal */
}

static void check_format(const uint8_t *data, size_t size)
{
	struct timespec t = { 1795816862, 5 };
	struct ab_audit_record rec;
	struct json_tokener *tok;
	struct json_object *o;
	char *s = malloc(size + 1), line[AB_AUDIT_LINE_MAX];
	int n;

	if (!s)
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	struct ab_audit_event ev = { .via = "capture", .host = s, .port = 443, .addr = s, .decision = "deny",
				     .rule = s, .reason = s, .duration_ms = (double)size };
	n = ab_audit_format(s, &ev, &t, line, sizeof(line));
	free(s);
	if (n < 0)
		abort(); /* every host fits: fields are cut */
	if (line[n - 1] != '\n' || memchr(line, '\n', (size_t)n - 1))
		abort(); /* one line */
	tok = json_tokener_new_ex(8);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, line, n - 1);
	if (!o || json_tokener_get_error(tok) != json_tokener_success)
		abort(); /* strict JSON, valid UTF-8 */
	json_object_put(o);
	json_tokener_free(tok);
	if (ab_audit_parse_line(line, (size_t)n, &rec) < 0 || strcmp(rec.decision, "deny") != 0 || rec.port != 443)
		abort();
	check_record(&rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ab_audit_record rec;

	if (ab_audit_parse_line((const char *)data, size, &rec) == 0)
		check_record(&rec);
	check_format(data, size);
	return 0;
}
