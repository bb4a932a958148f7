/* deskvm logging: one formatted line per message, written with a single write() so threads never interleave. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

static enum log_level current_level = LOG_LEVEL_INFO;
static int log_fd = STDERR_FILENO;
static bool log_fd_owned;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

bool log_level_parse(const char *s, enum log_level *out)
{
    for (unsigned i = 0; i < G_N_ELEMENTS(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = LOG_LEVEL_WARN;
        return true;
    }
    return false;
}

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level < G_N_ELEMENTS(level_names))
        return level_names[level];
    return "?";
}

void log_set_level(enum log_level level)
{
    current_level = level;
}

enum log_level log_get_level(void)
{
    return current_level;
}

int log_open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    log_close();
    log_fd = fd;
    log_fd_owned = true;
    return 0;
}

void log_set_fd(int fd)
{
    log_close();
    log_fd = fd;
    log_fd_owned = false;
}

void log_close(void)
{
    if (log_fd_owned)
        close(log_fd);
    log_fd = STDERR_FILENO;
    log_fd_owned = false;
}

static void log_vmessage(enum log_level level, const char *fmt, va_list ap)
{
    if (level > current_level)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char stamp[64];
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    char body[2048];
    int n = vsnprintf(body, sizeof(body), fmt, ap);
    if (n < 0)
        return;
    char line[2200];
    int len = snprintf(line, sizeof(line), "%s.%03ldZ deskvm[%d] %s: %s\n", stamp, (long)(tv.tv_usec / 1000),
                       (int)getpid(), log_level_name(level), body);
    if (len < 0)
        return;
    if ((size_t)len >= sizeof(line)) {
        len = sizeof(line) - 1;
        line[len - 1] = '\n';
    }
    ssize_t off = 0;
    while (off < len) {
        ssize_t w = write(log_fd, line + off, (size_t)(len - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += w;
    }
}

void log_message(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmessage(level, fmt, ap);
    va_end(ap);
}

bool log_ratelimit_allow(struct log_ratelimit *rl, int64_t now_ms, uint32_t *missed)
{
    *missed = 0;
    if (rl->window_start_ms < 0 || now_ms - rl->window_start_ms >= (int64_t)rl->interval_ms) {
        *missed = rl->suppressed;
        rl->window_start_ms = now_ms;
        rl->printed = 0;
        rl->suppressed = 0;
    }
    if (rl->printed < rl->burst) {
        rl->printed++;
        return true;
    }
    rl->suppressed++;
    return false;
}

void log_message_ratelimited(struct log_ratelimit *rl, enum log_level level, const char *fmt, ...)
{
    uint32_t missed;
    if (!log_ratelimit_allow(rl, g_get_monotonic_time() / 1000, &missed))
        return;
    if (missed)
        log_message(level, "(%u similar messages suppressed)", missed);
    va_list ap;
    va_start(ap, fmt);
    log_vmessage(level, fmt, ap);
    va_end(ap);
}
