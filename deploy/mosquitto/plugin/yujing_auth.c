/*
 * yujing's Mosquitto 2.0 plugin (plugin API v5), loaded per listener (per_listener_settings true).
 * It runs before the listener's password_file check and never replaces it. Two jobs:
 *
 * 1. Reserved client ids (plugin_opt_reserved_ids_from PASSWORD_FILE). A client id that is a
 *    login of that file, or begins with "<login>/", is refused (CONNACK 0x87) to anyone who did
 *    not log in as that login: no other local process can take over the collector's session.
 *    Nor can the login itself while a connection holds the id: Mosquitto 2.0.11 would close the
 *    old connection without telling it why (no DISCONNECT 0x8E), so the second connection is
 *    refused instead, and the holder gets a QoS 0 message on "$yujing/session-contested" (sent to
 *    that client only) saying from where; yujing's readiness fails on it. A collector whose
 *    connection went half-open waits for the broker's keepalive (1.5 x its keepalive) to reconnect.
 *
 * 2. Failed-login throttle (plugin_opt_max_failures N, plugin_opt_max_source_failures M,
 *    plugin_opt_window_s W, plugin_opt_block_s B). After N failed logins of one username from
 *    one address within W seconds, or M failed logins of any usernames from one address (an IPv6
 *    address counts by its /64), further logins of that pair (or address) are refused for B
 *    seconds without a password check, and one log line says so; when the block has ended, one
 *    more line (at the next login on the listener: Mosquitto 2.0.11 sends no TICK events to
 *    per-listener plugins) says how many attempts it refused. N = 0 turns the throttle off.
 *
 * How it learns that the password file refused a login: the broker frees a refused client's id
 * and disconnects it right away, in the same call, so a DISCONNECT event for the client whose
 * login this plugin just passed on, with no client id, is a failed login.
 *
 * Build: cc -shared -fPIC -O2 -o yujing_auth.so yujing_auth.c (headers: Debian's mosquitto-dev
 * and libmosquitto-dev); deploy/mosquitto/plugin/build.sh does it.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define SLOTS 4096 /* remembered addresses and (address, username) pairs */
#define PROBE 32   /* slots searched per key; the stalest unblocked one is reused */
#define ADDR_MAX 64
#define USER_MAX 64
#define HOLDERS 64 /* connections holding a reserved client id */
#define CONTESTED_TOPIC "$yujing/session-contested"

struct entry {
	uint64_t key; /* 0: empty */
	time_t window_start, blocked_until, last_seen;
	unsigned failures, refused;
	char addr[ADDR_MAX];
	char user[USER_MAX]; /* "" for an address's own entry */
};

struct instance {
	mosquitto_plugin_id_t *pid;
	char *reserved_file;
	char **reserved;
	size_t n_reserved;
	unsigned max_failures, max_source_failures, window_s, block_s;
	struct entry *table;
	time_t last_sweep;
	const struct mosquitto *pending; /* login handed to the password file, outcome not known yet */
	char pending_addr[ADDR_MAX], pending_user[USER_MAX];
	struct { const struct mosquitto *client; char id[USER_MAX * 2]; char addr[ADDR_MAX]; } holders[HOLDERS];
};

static time_t now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static uint64_t fnv1a(const char *a, const char *b)
{
	uint64_t h = 1469598103934665603ULL;
	for(const char *p = a; *p; p++){ h = (h ^ (unsigned char)*p) * 1099511628211ULL; }
	h = (h ^ 0xff) * 1099511628211ULL; /* separator that cannot occur in either string */
	for(const char *p = b; *p; p++){ h = (h ^ (unsigned char)*p) * 1099511628211ULL; }
	return h ? h : 1;
}

/* The address a throttle counts by: IPv4 as is, IPv6 by its /64 (one host owns a whole /64). */
static void source_of(const char *address, char *out)
{
	struct in6_addr a6;
	if(address && strchr(address, ':') && !strchr(address, '.') && inet_pton(AF_INET6, address, &a6) == 1){
		memset(a6.s6_addr + 8, 0, 8);
		inet_ntop(AF_INET6, &a6, out, ADDR_MAX);
		strncat(out, "/64", ADDR_MAX - strlen(out) - 1);
		return;
	}
	snprintf(out, ADDR_MAX, "%s", address ? address : "?");
}

static struct entry *lookup(struct instance *in, const char *addr, const char *user, int create, time_t now)
{
	uint64_t key = fnv1a(addr, user);
	struct entry *victim = NULL;
	for(unsigned i = 0; i < PROBE; i++){
		struct entry *e = &in->table[(key + i) % SLOTS];
		if(e->key == key) return e;
		if(!create) continue;
		if(e->key == 0){ if(!victim || victim->key) victim = e; continue; }
		if(victim && victim->key == 0) continue;
		int e_blocked = e->blocked_until > now, v_blocked = victim && victim->blocked_until > now;
		if(!victim || (v_blocked && !e_blocked) || (v_blocked == e_blocked && e->last_seen < victim->last_seen)){
			victim = e;
		}
	}
	if(!create) return NULL;
	memset(victim, 0, sizeof(*victim));
	victim->key = key;
	victim->window_start = now;
	snprintf(victim->addr, ADDR_MAX, "%s", addr);
	snprintf(victim->user, USER_MAX, "%s", user);
	return victim;
}

static void describe(const struct entry *e, char *out, size_t n)
{
	if(e->user[0]) snprintf(out, n, "user '%s' from %s", e->user, e->addr);
	else snprintf(out, n, "address %s", e->addr);
}

static void record_failure(struct instance *in, const char *addr, const char *user, unsigned limit, time_t now)
{
	struct entry *e = lookup(in, addr, user, 1, now);
	char who[ADDR_MAX + USER_MAX + 32];
	if(now - e->window_start >= (time_t)in->window_s){ e->window_start = now; e->failures = 0; }
	e->last_seen = now;
	if(++e->failures < limit || e->blocked_until > now) return;
	e->blocked_until = now + in->block_s;
	e->failures = 0;
	e->refused = 0;
	describe(e, who, sizeof(who));
	mosquitto_log_printf(MOSQ_LOG_WARNING, "yujing-auth: %s refused for %u s after %u failed logins within %u s",
			who, in->block_s, limit, in->window_s);
}

static int refused_while_blocked(struct entry *e, time_t now)
{
	if(!e || e->blocked_until <= now) return 0;
	e->refused++;
	e->last_seen = now;
	return 1;
}

static int is_reserved(const struct instance *in, const char *id, size_t len)
{
	for(size_t i = 0; i < in->n_reserved; i++){
		if(strlen(in->reserved[i]) == len && !strncmp(in->reserved[i], id, len)) return 1;
	}
	return 0;
}

/* A second connection for a reserved id that a live connection holds: refuse it, tell the holder. */
static int contested(struct instance *in, const struct mosquitto *client, const char *id, const char *user,
		const char *src)
{
	int free_slot = -1;
	char payload[512];
	for(int i = 0; i < HOLDERS; i++){
		if(!in->holders[i].client){ if(free_slot < 0) free_slot = i; continue; }
		if(strcmp(in->holders[i].id, id) || in->holders[i].client == client) continue;
		mosquitto_log_printf(MOSQ_LOG_WARNING, "yujing-auth: client id '%s' is connected from %s; refused a second "
				"connection from %s (user '%s'): a second collector with the same id, or a leaked login?",
				id, in->holders[i].addr, src, user);
		int n = snprintf(payload, sizeof(payload), "{\"client_id\": \"%s\", \"from\": \"%s\", \"user\": \"%s\"}",
				id, src, user);
		if(n < 0 || n >= (int)sizeof(payload)) n = (int)strlen(payload); /* truncated */
		mosquitto_broker_publish_copy(id, CONTESTED_TOPIC, n, payload, 0, false, NULL);
		return 1;
	}
	if(free_slot >= 0){ /* held from now on; released when this client disconnects (or fails its login) */
		in->holders[free_slot].client = client;
		snprintf(in->holders[free_slot].id, sizeof(in->holders[free_slot].id), "%s", id);
		snprintf(in->holders[free_slot].addr, ADDR_MAX, "%s", src);
	}
	return 0;
}

static void sweep(struct instance *in, time_t now);

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	struct instance *in = userdata;
	const char *id = mosquitto_client_id(ed->client);
	const char *user = ed->username ? ed->username : "";
	char src[ADDR_MAX];
	time_t now = now_s();
	(void)event;

	in->pending = NULL;
	source_of(mosquitto_client_address(ed->client), src);
	if(id && in->n_reserved){
		const char *slash = strchr(id, '/');
		size_t owner_len = slash ? (size_t)(slash - id) : strlen(id);
		if(is_reserved(in, id, owner_len) && (strlen(user) != owner_len || strncmp(user, id, owner_len))){
			mosquitto_log_printf(MOSQ_LOG_WARNING,
					"yujing-auth: client id '%s' is reserved for login '%.*s'; refused to user '%s' from %s",
					id, (int)owner_len, id, user, src);
			return MOSQ_ERR_AUTH;
		}
		if(is_reserved(in, id, owner_len) && contested(in, ed->client, id, user, src)) return MOSQ_ERR_AUTH;
	}
	if(in->max_failures == 0) return MOSQ_ERR_PLUGIN_DEFER;
	sweep(in, now);
	if(refused_while_blocked(lookup(in, src, "", 0, now), now)
			|| refused_while_blocked(lookup(in, src, user, 0, now), now)){
		return MOSQ_ERR_AUTH;
	}
	in->pending = ed->client;
	snprintf(in->pending_addr, ADDR_MAX, "%s", src);
	snprintf(in->pending_user, USER_MAX, "%s", user);
	return MOSQ_ERR_PLUGIN_DEFER;
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;
	struct instance *in = userdata;
	(void)event;
	for(int i = 0; i < HOLDERS; i++){
		if(in->holders[i].client == ed->client) in->holders[i].client = NULL;
	}
	if(ed->client != in->pending) return MOSQ_ERR_SUCCESS;
	in->pending = NULL;
	if(mosquitto_client_id(ed->client) == NULL){ /* the password file refused it */
		time_t now = now_s();
		record_failure(in, in->pending_addr, in->pending_user, in->max_failures, now);
		if(in->max_source_failures) record_failure(in, in->pending_addr, "", in->max_source_failures, now);
	}
	return MOSQ_ERR_SUCCESS;
}

/* Blocks that have ended: one log line each. At most once a second. */
static void sweep(struct instance *in, time_t now)
{
	char who[ADDR_MAX + USER_MAX + 32];
	if(now == in->last_sweep) return;
	in->last_sweep = now;
	for(unsigned i = 0; i < SLOTS; i++){
		struct entry *e = &in->table[i];
		if(e->key == 0 || e->blocked_until == 0 || e->blocked_until > now) continue;
		describe(e, who, sizeof(who));
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "yujing-auth: block of %s ended; %u logins refused during it",
				who, e->refused);
		e->blocked_until = 0;
		e->refused = 0;
	}
}

static void free_reserved(struct instance *in)
{
	for(size_t i = 0; i < in->n_reserved; i++) free(in->reserved[i]);
	free(in->reserved);
	in->reserved = NULL;
	in->n_reserved = 0;
}

/* The logins of a Mosquitto password file ("user:hash" lines). */
static int load_reserved(struct instance *in)
{
	FILE *f = fopen(in->reserved_file, "r");
	char line[1024];
	if(!f){
		mosquitto_log_printf(MOSQ_LOG_ERR, "yujing-auth: cannot read %s", in->reserved_file);
		return MOSQ_ERR_UNKNOWN;
	}
	free_reserved(in);
	while(fgets(line, sizeof(line), f)){
		char *colon = strchr(line, ':');
		if(line[0] == '#' || !colon || colon == line) continue;
		char **grown = realloc(in->reserved, (in->n_reserved + 1) * sizeof(char *));
		if(!grown){ fclose(f); return MOSQ_ERR_NOMEM; }
		in->reserved = grown;
		in->reserved[in->n_reserved++] = strndup(line, (size_t)(colon - line));
	}
	fclose(f);
	mosquitto_log_printf(MOSQ_LOG_INFO, "yujing-auth: %zu logins own their client ids (%s)",
			in->n_reserved, in->reserved_file);
	return MOSQ_ERR_SUCCESS;
}

static int on_reload(int event, void *event_data, void *userdata)
{
	(void)event; (void)event_data;
	return load_reserved(userdata) == MOSQ_ERR_NOMEM ? MOSQ_ERR_NOMEM : MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

static int parse_unsigned(const char *key, const char *value, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(value, &end, 10);
	if(*value == '\0' || *end != '\0' || v > 86400UL * 365){
		mosquitto_log_printf(MOSQ_LOG_ERR, "yujing-auth: plugin_opt_%s must be a whole number, got '%s'", key, value);
		return 1;
	}
	*out = (unsigned)v;
	return 0;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *pid, void **user_data, struct mosquitto_opt *opts, int opt_count)
{
	struct instance *in = calloc(1, sizeof(*in));
	int bad = 0;
	if(!in) return MOSQ_ERR_NOMEM;
	in->pid = pid;
	in->max_failures = 5;
	in->max_source_failures = 30;
	in->window_s = 60;
	in->block_s = 300;
	for(int i = 0; i < opt_count; i++){
		const char *k = opts[i].key, *v = opts[i].value;
		if(!strcmp(k, "reserved_ids_from")) in->reserved_file = strdup(v);
		else if(!strcmp(k, "max_failures")) bad |= parse_unsigned(k, v, &in->max_failures);
		else if(!strcmp(k, "max_source_failures")) bad |= parse_unsigned(k, v, &in->max_source_failures);
		else if(!strcmp(k, "window_s")) bad |= parse_unsigned(k, v, &in->window_s);
		else if(!strcmp(k, "block_s")) bad |= parse_unsigned(k, v, &in->block_s);
		else { mosquitto_log_printf(MOSQ_LOG_ERR, "yujing-auth: unknown option plugin_opt_%s", k); bad = 1; }
	}
	in->table = calloc(SLOTS, sizeof(struct entry));
	if(bad || !in->table || (in->reserved_file && load_reserved(in))){
		free(in->table); free(in->reserved_file); free_reserved(in); free(in);
		return MOSQ_ERR_INVAL;
	}
	*user_data = in;
	mosquitto_callback_register(pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, in);
	mosquitto_callback_register(pid, MOSQ_EVT_DISCONNECT, on_disconnect, NULL, in);
	if(in->reserved_file) mosquitto_callback_register(pid, MOSQ_EVT_RELOAD, on_reload, NULL, in);
	mosquitto_log_printf(MOSQ_LOG_INFO, "yujing-auth: throttle %s (%u per user and address, %u per address, "
			"within %u s; blocked %u s)", in->max_failures ? "on" : "off", in->max_failures,
			in->max_source_failures, in->window_s, in->block_s);
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *user_data, struct mosquitto_opt *opts, int opt_count)
{
	struct instance *in = user_data;
	(void)opts; (void)opt_count;
	if(!in) return MOSQ_ERR_SUCCESS;
	mosquitto_callback_unregister(in->pid, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
	mosquitto_callback_unregister(in->pid, MOSQ_EVT_DISCONNECT, on_disconnect, NULL);
	if(in->reserved_file) mosquitto_callback_unregister(in->pid, MOSQ_EVT_RELOAD, on_reload, NULL);
	free_reserved(in);
	free(in->reserved_file);
	free(in->table);
	free(in);
	return MOSQ_ERR_SUCCESS;
}
