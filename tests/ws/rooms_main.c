#include <stdlib.h>

#include "rooms_test.h"

int main(void)
{
    SRunner *sr = srunner_create(rooms_suite());
    srunner_add_suite(sr, rooms_history_suite());
    srunner_add_suite(sr, rooms_ws_suite());
    srunner_add_suite(sr, rooms_backlog_suite());
    srunner_add_suite(sr, rooms_direct_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
