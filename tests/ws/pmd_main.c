/* The permessage-deflate suites (meson test --suite pmd). */
#include <stdlib.h>

#include "util.h"

Suite *pmd_suite(void);
Suite *pmd_conn_suite(void);

int main(void)
{
    SRunner *sr = srunner_create(pmd_suite());
    srunner_add_suite(sr, pmd_conn_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
