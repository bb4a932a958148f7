/* deskvm logging: levelled, timestamped lines to stderr or a log file, plus a rate limiter for guest-triggered
 * messages so a hostile guest cannot flood the log. */
#ifndef DESKVM_LOG_H
#define DESKVM_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

/* Parses "error", "warn"/"warning", "info" or "debug". Returns false for anything else. */
bool log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Sends log output to PATH (appended, created 0640). Returns 0 or a negative errno; on error the old target stays. */
int log_open_file(const char *path);
/* Sends log output to an already open fd (used by tests and after daemonizing). The fd is not closed. */
void log_set_fd(int fd);
void log_close(void);

void log_message(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_message(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_message(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_message(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_message(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* Allows at most `burst` messages per `interval_ms`; later ones are counted and reported as suppressed when the
 * next window opens. Zero-initialise with LOG_RATELIMIT_INIT. */
struct log_ratelimit {
    uint32_t interval_ms;
    uint32_t burst;
    int64_t window_start_ms;
    uint32_t printed;
    uint32_t suppressed;
};
#define LOG_RATELIMIT_INIT(interval, n) {.interval_ms = (interval), .burst = (n), .window_start_ms = -1}

/* Returns true if a message may be printed at time now_ms. When a new window opens after suppression, *missed is set
 * to how many were dropped (else 0). */
bool log_ratelimit_allow(struct log_ratelimit *rl, int64_t now_ms, uint32_t *missed);

/* Logs at `level` unless the limiter says no; reports the number of suppressed messages when it resumes. */
void log_message_ratelimited(struct log_ratelimit *rl, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
