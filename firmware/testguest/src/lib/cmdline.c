#include "cmdline.h"
#include "string.h"

#define CMDLINE_MAX 1024
#define TOKENS_MAX 32

static char text_copy[CMDLINE_MAX];
static char storage[CMDLINE_MAX];
static const char *keys[TOKENS_MAX];
static const char *values[TOKENS_MAX];
static int count;

void cmdline_init(const char *text) {
	size_t n = 0;
	count = 0;
	if (!text) text = "";
	while (text[n] && n + 1 < CMDLINE_MAX) { text_copy[n] = text[n]; n++; }
	text_copy[n] = '\0';
	memcpy(storage, text_copy, n + 1);
	char *p = storage;
	while (*p && count < TOKENS_MAX) {
		while (*p == ' ' || *p == '\t' || *p == '\n') *p++ = '\0';
		if (!*p) break;
		char *key = p;
		char *value = "";
		int split = 0;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
			/* Only the first '=' splits: test=power,how=s5 keeps "power,how=s5". */
			if (*p == '=' && !split) { *p = '\0'; value = p + 1; split = 1; }
			p++;
		}
		keys[count] = key;
		values[count] = value;
		count++;
	}
}

const char *cmdline_text(void) { return text_copy; }

const char *cmdline_get(const char *key) {
	for (int i = 0; i < count; i++)
		if (strcmp(keys[i], key) == 0) return values[i];
	return 0;
}

uint64_t cmdline_get_u64(const char *key, uint64_t fallback) {
	const char *v = cmdline_get(key);
	uint64_t out;
	if (!v || !parse_u64(v, strlen(v), &out)) return fallback;
	return out;
}

static void copy_span(const char *s, size_t n, char *out, size_t size) {
	if (!size) return;
	if (n >= size) n = size - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

void optlist_head(const char *list, char *out, size_t size) {
	size_t n = 0;
	while (list[n] && list[n] != ',') n++;
	copy_span(list, n, out, size);
}

int optlist_get(const char *list, const char *key, char *out, size_t size) {
	size_t klen = strlen(key);
	const char *p = list;
	while (*p) {
		const char *end = p;
		while (*end && *end != ',') end++;
		if ((size_t)(end - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
			copy_span(p + klen + 1, (size_t)(end - p) - klen - 1, out, size);
			return 1;
		}
		p = *end ? end + 1 : end;
	}
	return 0;
}

uint64_t optlist_get_u64(const char *list, const char *key, uint64_t fallback) {
	char buf[32];
	uint64_t out;
	if (!optlist_get(list, key, buf, sizeof buf) || !parse_u64(buf, strlen(buf), &out)) return fallback;
	return out;
}
