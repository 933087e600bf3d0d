#include <stdlib.h>

#include "harness.h"

int main(void)
{
    SRunner *sr = srunner_create(sched_suite());
    srunner_add_suite(sr, mailbox_suite());
    srunner_add_suite(sr, links_suite());
    srunner_add_suite(sr, timer_suite());
    srunner_add_suite(sr, io_suite());
    srunner_add_suite(sr, stack_suite());
    srunner_add_suite(sr, misc_suite());
    srunner_add_suite(sr, core_suite());
    srunner_add_suite(sr, count_suite());
    srunner_add_suite(sr, magazine_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
