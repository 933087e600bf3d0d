#include <stdlib.h>

#include "conn_routes.h"
#include "util.h"

int main(void)
{
    SRunner *sr = srunner_create(base64_suite());
    srunner_add_suite(sr, utf8_suite());
    srunner_add_suite(sr, decoder_suite());
    srunner_add_suite(sr, unmask_suite());
    srunner_add_suite(sr, encoder_suite());
    srunner_add_suite(sr, message_suite());
    srunner_add_suite(sr, close_suite());
    srunner_add_suite(sr, handshake_suite());
    srunner_add_suite(sr, outq_suite());
    srunner_add_suite(sr, conn_life_suite());
    srunner_add_suite(sr, conn_handlers_suite());
    srunner_add_suite(sr, conn_deadline_suite());
    srunner_add_suite(sr, conn_outbound_suite());
    srunner_add_suite(sr, conn_idle_suite());
    srunner_add_suite(sr, conn_large_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
