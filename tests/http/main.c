/* test-http: runs every HTTP suite. */
#include <check.h>
#include <stdlib.h>

Suite *parse_suite(void);
Suite *chunked_suite(void);
Suite *router_suite(void);
Suite *server_suite(void);
Suite *response_suite(void);
Suite *tls_suite(void);

int main(void)
{
    SRunner *sr = srunner_create(parse_suite());
    srunner_add_suite(sr, chunked_suite());
    srunner_add_suite(sr, router_suite());
    srunner_add_suite(sr, response_suite());
#ifdef HTTP_TEST_SERVER
    srunner_add_suite(sr, server_suite());
    srunner_add_suite(sr, tls_suite());
#endif
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
