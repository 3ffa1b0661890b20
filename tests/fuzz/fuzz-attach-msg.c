/* Attach protocol packets: any bytes decode to one valid message or are refused, never a
 * crash; what decodes is canonical (it encodes back to the very same bytes) and within
 * the protocol's limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/attach.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t again[AB_ATTACH_MAX_MSG];
	struct ab_attach_msg m;
	int n;

	if (ab_attach_msg_decode(data, size, &m) < 0)
		return 0;
	if (size > AB_ATTACH_MAX_MSG || m.len > AB_ATTACH_MAX_PAYLOAD)
		__builtin_trap();
	if (m.len && ((const uint8_t *)m.data < data || (const uint8_t *)m.data + m.len > data + size))
		__builtin_trap();
	switch (m.type) {
	case AB_MSG_EXITED:
		if (m.len > AB_ATTACH_REASON_MAX || memchr(m.data, '\0', m.len))
			__builtin_trap();
		break;
	case AB_MSG_ERROR:
		if (!m.len || m.len > AB_ATTACH_ERROR_MAX || memchr(m.data, '\0', m.len))
			__builtin_trap();
		break;
	case AB_MSG_INPUT:
	case AB_MSG_OUTPUT:
		if (!m.len)
			__builtin_trap();
		break;
	case AB_MSG_WELCOME:
		if (m.replay_len > AB_ATTACH_REPLAY_SIZE)
			__builtin_trap();
		break;
	case AB_MSG_HELLO:
	case AB_MSG_RESIZE:
	case AB_MSG_DETACH:
		break;
	}
	n = ab_attach_msg_encode(&m, again, sizeof(again));
	if (n < 0 || (size_t)n != size || memcmp(again, data, size) != 0)
		__builtin_trap();
	return 0;
}
