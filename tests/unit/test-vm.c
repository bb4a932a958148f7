/* Proves the VM run-state machine: its transitions and the events and machine hooks each one triggers. */
#include <string.h>

#include <glib.h>

#include "log.h"
#include "vm.h"

/* Records hook calls, events and exit calls in order, e.g. "pause STOP exit". */
struct recorder {
    GString *trace;
    int pause, resume, reset, powerdown, exits;
    int events;
    struct vm_event last;
};

static void trace(struct recorder *r, const char *what)
{
    if (r->trace->len)
        g_string_append_c(r->trace, ' ');
    g_string_append(r->trace, what);
}

static void op_pause(void *o)
{
    struct recorder *r = o;
    r->pause++;
    trace(r, "pause");
}

static void op_resume(void *o)
{
    struct recorder *r = o;
    r->resume++;
    trace(r, "resume");
}

static void op_reset(void *o)
{
    struct recorder *r = o;
    r->reset++;
    trace(r, "reset");
}

static void op_powerdown(void *o)
{
    struct recorder *r = o;
    r->powerdown++;
    trace(r, "powerdown");
}

static void on_exit_request(void *o)
{
    struct recorder *r = o;
    r->exits++;
    trace(r, "exit");
}

static const char *event_name(enum vm_event_kind k)
{
    switch (k) {
    case VM_EVENT_STOP:
        return "STOP";
    case VM_EVENT_RESUME:
        return "RESUME";
    case VM_EVENT_RESET:
        return "RESET";
    case VM_EVENT_POWERDOWN:
        return "POWERDOWN";
    case VM_EVENT_SHUTDOWN:
        return "SHUTDOWN";
    }
    return "?";
}

static void on_event(void *o, const struct vm_event *ev)
{
    struct recorder *r = o;
    r->events++;
    r->last = *ev;
    if (ev->kind == VM_EVENT_RESET || ev->kind == VM_EVENT_SHUTDOWN) {
        g_autofree char *s = g_strdup_printf("%s(%s)", event_name(ev->kind), vm_cause_name(ev->cause));
        trace(r, s);
    } else {
        trace(r, event_name(ev->kind));
    }
}

static const struct vm_ops full_ops = {op_pause, op_resume, op_reset, op_powerdown};

struct fixture {
    struct vm *vm;
    struct recorder r;
};

static void setup(struct fixture *f, bool start_paused)
{
    memset(f, 0, sizeof(*f));
    f->r.trace = g_string_new(NULL);
    f->vm = vm_new("test", start_paused);
    vm_set_ops(f->vm, &full_ops, &f->r);
    vm_set_exit_handler(f->vm, on_exit_request, &f->r);
    g_assert_cmpuint(vm_add_listener(f->vm, on_event, &f->r), !=, 0);
}

static void teardown(struct fixture *f)
{
    vm_free(f->vm);
    g_string_free(f->r.trace, TRUE);
}

static void expect_trace(struct fixture *f, const char *want)
{
    g_assert_cmpstr(f->r.trace->str, ==, want);
    g_string_truncate(f->r.trace, 0);
}

static void test_initial_running(void)
{
    struct fixture f;
    setup(&f, false);
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_RUNNING);
    g_assert_cmpstr(vm_get_name(f.vm), ==, "test");
    expect_trace(&f, "");
    teardown(&f);
}

static void test_initial_prelaunch_when_paused(void)
{
    struct fixture f;
    setup(&f, true);
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_PRELAUNCH);
    expect_trace(&f, "");
    teardown(&f);
}

static void test_unnamed(void)
{
    struct vm *vm = vm_new(NULL, false);
    g_assert_null(vm_get_name(vm));
    vm_free(vm);
    vm_free(NULL);
}

static void test_stop_pauses_and_emits_stop(void)
{
    struct fixture f;
    setup(&f, false);
    vm_stop(f.vm);
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_PAUSED);
    g_assert_cmpint(f.r.pause, ==, 1);
    g_assert_cmpint(f.r.last.kind, ==, VM_EVENT_STOP);
    expect_trace(&f, "pause STOP");
    teardown(&f);
}

static void test_stop_when_paused_is_noop(void)
{
    struct fixture f;
    setup(&f, false);
    vm_stop(f.vm);
    expect_trace(&f, "pause STOP");
    vm_stop(f.vm);
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_PAUSED);
    g_assert_cmpint(f.r.pause, ==, 1);
    g_assert_cmpint(f.r.events, ==, 1);
    expect_trace(&f, "");
    teardown(&f);
}

static void test_stop_in_prelaunch_is_noop(void)
{
    struct fixture f;
    setup(&f, true);
    vm_stop(f.vm);
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_PRELAUNCH);
    g_assert_cmpint(f.r.events, ==, 0);
    expect_trace(&f, "");
    teardown(&f);
}

static void test_cont_from_prelaunch(void)
{
    struct fixture f;
    setup(&f, true);
    GError *err = NULL;
    g_assert_true(vm_cont(f.vm, &err));
    g_assert_no_error(err);
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_RUNNING);
    g_assert_cmpint(f.r.resume, ==, 1);
    g_assert_cmpint(f.r.last.kind, ==, VM_EVENT_RESUME);
    expect_trace(&f, "resume RESUME");
    teardown(&f);
}

static void test_cont_from_paused(void)
{
    struct fixture f;
    setup(&f, false);
    vm_stop(f.vm);
    expect_trace(&f, "pause STOP");
    g_assert_true(vm_cont(f.vm, NULL));
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_RUNNING);
    expect_trace(&f, "resume RESUME");
    teardown(&f);
}

static void test_cont_when_running_is_noop(void)
{
    struct fixture f;
    setup(&f, false);
    GError *err = NULL;
    g_assert_true(vm_cont(f.vm, &err));
    g_assert_no_error(err);
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_RUNNING);
    g_assert_cmpint(f.r.resume, ==, 0);
    g_assert_cmpint(f.r.events, ==, 0);
    expect_trace(&f, "");
    teardown(&f);
}

static void test_reset_emits_reset_with_cause(void)
{
    struct fixture f;
    setup(&f, false);
    vm_reset(f.vm, VM_CAUSE_HOST_QMP_SYSTEM_RESET);
    g_assert_cmpint(f.r.reset, ==, 1);
    g_assert_cmpint(f.r.last.kind, ==, VM_EVENT_RESET);
    g_assert_cmpint(f.r.last.cause, ==, VM_CAUSE_HOST_QMP_SYSTEM_RESET);
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_RUNNING);
    expect_trace(&f, "reset RESET(host-qmp-system-reset)");
    /* a paused VM resets and stays paused */
    vm_stop(f.vm);
    vm_reset(f.vm, VM_CAUSE_GUEST_RESET);
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_PAUSED);
    expect_trace(&f, "pause STOP reset RESET(guest-reset)");
    teardown(&f);
}

static void test_powerdown_emits_powerdown(void)
{
    struct fixture f;
    setup(&f, false);
    vm_powerdown(f.vm);
    g_assert_cmpint(f.r.powerdown, ==, 1);
    g_assert_cmpint(f.r.last.kind, ==, VM_EVENT_POWERDOWN);
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_RUNNING); /* the guest decides what to do */
    g_assert_cmpint(f.r.exits, ==, 0);
    expect_trace(&f, "POWERDOWN powerdown");
    teardown(&f);
}

static void test_shutdown_once(void)
{
    struct fixture f;
    setup(&f, false);
    vm_shutdown(f.vm, VM_CAUSE_GUEST_SHUTDOWN);
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_SHUTDOWN);
    g_assert_cmpint(f.r.last.kind, ==, VM_EVENT_SHUTDOWN);
    g_assert_cmpint(f.r.last.cause, ==, VM_CAUSE_GUEST_SHUTDOWN);
    /* the machine stops, then the event, then the exit handler */
    expect_trace(&f, "pause SHUTDOWN(guest-shutdown) exit");

    vm_shutdown(f.vm, VM_CAUSE_HOST_SIGNAL);
    g_assert_cmpint(f.r.exits, ==, 1);
    g_assert_cmpint(f.r.events, ==, 1);

    GError *err = NULL;
    g_assert_false(vm_cont(f.vm, &err));
    g_assert_error(err, VM_ERROR, 0);
    g_assert_cmpstr(err->message, ==, "The VM is shutting down");
    g_clear_error(&err);
    g_assert_false(vm_cont(f.vm, NULL));

    vm_reset(f.vm, VM_CAUSE_GUEST_RESET);
    vm_powerdown(f.vm);
    vm_stop(f.vm);
    g_assert_cmpint(vm_get_state(f.vm), ==, VM_SHUTDOWN);
    g_assert_cmpint(f.r.events, ==, 1);
    expect_trace(&f, "");
    teardown(&f);
}

static void test_shutdown_when_paused_does_not_pause_again(void)
{
    struct fixture f;
    setup(&f, true);
    vm_shutdown(f.vm, VM_CAUSE_HOST_QMP_QUIT);
    expect_trace(&f, "SHUTDOWN(host-qmp-quit) exit");
    teardown(&f);
}

static void test_no_ops_attached(void)
{
    struct vm *vm = vm_new(NULL, true);
    struct recorder r = {.trace = g_string_new(NULL)};
    vm_add_listener(vm, on_event, &r);
    g_assert_true(vm_cont(vm, NULL));
    vm_stop(vm);
    vm_reset(vm, VM_CAUSE_HOST_ERROR);
    vm_powerdown(vm);
    vm_shutdown(vm, VM_CAUSE_GUEST_PANIC);
    g_assert_cmpstr(r.trace->str, ==, "RESUME STOP RESET(host-error) POWERDOWN SHUTDOWN(guest-panic)");
    g_assert_cmpint(vm_get_state(vm), ==, VM_SHUTDOWN);

    /* partly filled ops: only the hooks present are called */
    struct vm *vm2 = vm_new(NULL, false);
    static const struct vm_ops pause_only = {op_pause, NULL, NULL, NULL};
    vm_set_ops(vm2, &pause_only, &r);
    g_string_truncate(r.trace, 0);
    vm_stop(vm2);
    g_assert_true(vm_cont(vm2, NULL));
    vm_reset(vm2, VM_CAUSE_GUEST_RESET);
    vm_powerdown(vm2);
    g_assert_cmpstr(r.trace->str, ==, "pause");
    vm_free(vm2);
    vm_free(vm);
    g_string_free(r.trace, TRUE);
}

static void test_listener_removal(void)
{
    struct fixture f;
    setup(&f, false);
    struct recorder second = {.trace = g_string_new(NULL)};
    unsigned h = vm_add_listener(f.vm, on_event, &second);
    g_assert_cmpuint(h, !=, 0);
    vm_stop(f.vm);
    g_assert_cmpint(second.events, ==, 1);
    vm_remove_listener(f.vm, h);
    vm_remove_listener(f.vm, h + 100); /* unknown handles are ignored */
    g_assert_true(vm_cont(f.vm, NULL));
    g_assert_cmpint(second.events, ==, 1);
    g_assert_cmpint(f.r.events, ==, 2);
    g_string_free(second.trace, TRUE);
    teardown(&f);
}

struct self_remover {
    struct vm *vm;
    unsigned handle;
    int calls;
};

static void remove_self(void *o, const struct vm_event *ev)
{
    struct self_remover *s = o;
    s->calls++;
    vm_remove_listener(s->vm, s->handle);
}

static void test_listener_removes_itself(void)
{
    struct fixture f;
    memset(&f, 0, sizeof(f));
    f.r.trace = g_string_new(NULL);
    f.vm = vm_new(NULL, false);
    struct self_remover s = {.vm = f.vm};
    s.handle = vm_add_listener(f.vm, remove_self, &s);
    unsigned h2 = vm_add_listener(f.vm, on_event, &f.r);
    g_assert_cmpuint(h2, !=, s.handle);
    vm_stop(f.vm);
    g_assert_cmpint(s.calls, ==, 1);
    g_assert_cmpint(f.r.events, ==, 1); /* the later listener still got this event */
    g_assert_true(vm_cont(f.vm, NULL));
    g_assert_cmpint(s.calls, ==, 1);
    g_assert_cmpint(f.r.events, ==, 2);
    teardown(&f);
}

static void test_runstate_names(void)
{
    g_assert_cmpstr(vm_runstate_name(VM_PRELAUNCH), ==, "prelaunch");
    g_assert_cmpstr(vm_runstate_name(VM_RUNNING), ==, "running");
    g_assert_cmpstr(vm_runstate_name(VM_PAUSED), ==, "paused");
    g_assert_cmpstr(vm_runstate_name(VM_SHUTDOWN), ==, "shutdown");
    g_assert_cmpstr(vm_runstate_name((enum vm_runstate)42), ==, "internal-error");
}

static void test_cause_names(void)
{
    g_assert_cmpstr(vm_cause_name(VM_CAUSE_HOST_ERROR), ==, "host-error");
    g_assert_cmpstr(vm_cause_name(VM_CAUSE_HOST_QMP_QUIT), ==, "host-qmp-quit");
    g_assert_cmpstr(vm_cause_name(VM_CAUSE_HOST_QMP_SYSTEM_RESET), ==, "host-qmp-system-reset");
    g_assert_cmpstr(vm_cause_name(VM_CAUSE_HOST_SIGNAL), ==, "host-signal");
    g_assert_cmpstr(vm_cause_name(VM_CAUSE_GUEST_SHUTDOWN), ==, "guest-shutdown");
    g_assert_cmpstr(vm_cause_name(VM_CAUSE_GUEST_RESET), ==, "guest-reset");
    g_assert_cmpstr(vm_cause_name(VM_CAUSE_GUEST_PANIC), ==, "guest-panic");
    g_assert_cmpstr(vm_cause_name((enum vm_cause)42), ==, "none");
}

static void test_cause_is_guest(void)
{
    g_assert_false(vm_cause_is_guest(VM_CAUSE_HOST_ERROR));
    g_assert_false(vm_cause_is_guest(VM_CAUSE_HOST_QMP_QUIT));
    g_assert_false(vm_cause_is_guest(VM_CAUSE_HOST_QMP_SYSTEM_RESET));
    g_assert_false(vm_cause_is_guest(VM_CAUSE_HOST_SIGNAL));
    g_assert_true(vm_cause_is_guest(VM_CAUSE_GUEST_SHUTDOWN));
    g_assert_true(vm_cause_is_guest(VM_CAUSE_GUEST_RESET));
    g_assert_true(vm_cause_is_guest(VM_CAUSE_GUEST_PANIC));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    log_set_level(LOG_LEVEL_ERROR); /* the VM's info lines would clutter the TAP output */

    g_test_add_func("/vm/state/initial-running", test_initial_running);
    g_test_add_func("/vm/state/initial-prelaunch-when-start-paused", test_initial_prelaunch_when_paused);
    g_test_add_func("/vm/state/unnamed", test_unnamed);
    g_test_add_func("/vm/stop/pauses-and-emits-stop", test_stop_pauses_and_emits_stop);
    g_test_add_func("/vm/stop/when-paused-is-noop", test_stop_when_paused_is_noop);
    g_test_add_func("/vm/stop/in-prelaunch-is-noop", test_stop_in_prelaunch_is_noop);
    g_test_add_func("/vm/cont/from-prelaunch-resumes", test_cont_from_prelaunch);
    g_test_add_func("/vm/cont/from-paused-resumes", test_cont_from_paused);
    g_test_add_func("/vm/cont/when-running-is-noop", test_cont_when_running_is_noop);
    g_test_add_func("/vm/reset/emits-reset-with-cause", test_reset_emits_reset_with_cause);
    g_test_add_func("/vm/powerdown/emits-powerdown-and-presses-button", test_powerdown_emits_powerdown);
    g_test_add_func("/vm/shutdown/once-then-everything-refused", test_shutdown_once);
    g_test_add_func("/vm/shutdown/from-prelaunch-does-not-pause",
                    test_shutdown_when_paused_does_not_pause_again);
    g_test_add_func("/vm/ops/missing-hooks-are-skipped", test_no_ops_attached);
    g_test_add_func("/vm/listener/removal", test_listener_removal);
    g_test_add_func("/vm/listener/removes-itself-during-event", test_listener_removes_itself);
    g_test_add_func("/vm/names/runstate", test_runstate_names);
    g_test_add_func("/vm/names/cause", test_cause_names);
    g_test_add_func("/vm/names/cause-is-guest", test_cause_is_guest);
    return g_test_run();
}
