/*
 * token.c: see token.h.
 */
#include "http/token.h"

#include <string.h>

#include "http/request.h"

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 *         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA   (RFC 9110 §5.6.2) */
#define T1(c) [c] = 1
const unsigned char http_tchar_table[256] = {
    T1('!'), T1('#'), T1('$'), T1('%'), T1('&'), T1('\''), T1('*'), T1('+'), T1('-'), T1('.'),
    T1('^'), T1('_'), T1('`'), T1('|'), T1('~'),
    T1('0'), T1('1'), T1('2'), T1('3'), T1('4'), T1('5'), T1('6'), T1('7'), T1('8'), T1('9'),
    T1('A'), T1('B'), T1('C'), T1('D'), T1('E'), T1('F'), T1('G'), T1('H'), T1('I'), T1('J'),
    T1('K'), T1('L'), T1('M'), T1('N'), T1('O'), T1('P'), T1('Q'), T1('R'), T1('S'), T1('T'),
    T1('U'), T1('V'), T1('W'), T1('X'), T1('Y'), T1('Z'),
    T1('a'), T1('b'), T1('c'), T1('d'), T1('e'), T1('f'), T1('g'), T1('h'), T1('i'), T1('j'),
    T1('k'), T1('l'), T1('m'), T1('n'), T1('o'), T1('p'), T1('q'), T1('r'), T1('s'), T1('t'),
    T1('u'), T1('v'), T1('w'), T1('x'), T1('y'), T1('z'),
};
#undef T1

bool http_is_token(struct http_str s)
{
    if (s.n == 0)
        return false;
    for (size_t i = 0; i < s.n; i++)
        if (!http_is_tchar((unsigned char)s.p[i]))
            return false;
    return true;
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

bool http_str_eq_ci2(struct http_str a, struct http_str b)
{
    if (a.n != b.n)
        return false;
    for (size_t i = 0; i < a.n; i++)
        if (lower((unsigned char)a.p[i]) != lower((unsigned char)b.p[i]))
            return false;
    return true;
}

bool http_list_next(struct http_str v, size_t *pos, struct http_str *item)
{
    size_t i = *pos;
    while (i < v.n && (v.p[i] == ',' || http_is_ows((unsigned char)v.p[i])))
        i++;
    if (i == v.n) {
        *pos = i;
        return false;
    }
    size_t start = i;
    while (i < v.n && v.p[i] != ',')
        i++;
    size_t end = i;
    while (end > start && http_is_ows((unsigned char)v.p[end - 1]))
        end--;
    *item = (struct http_str){v.p + start, end - start};
    *pos = i;
    return true;
}

size_t http_header_count(const struct http_request *req, const char *name, const struct http_header **first)
{
    size_t n = 0;
    *first = NULL;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (http_str_eq_ci(req->headers[i].name, name)) {
            if (!n)
                *first = &req->headers[i];
            n++;
        }
    }
    return n;
}

bool http_header_has_token(const struct http_request *req, const char *name, const char *token)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!http_str_eq_ci(req->headers[i].name, name))
            continue;
        struct http_str item;
        size_t pos = 0;
        while (http_list_next(req->headers[i].value, &pos, &item))
            if (http_str_eq_ci(item, token))
                return true;
    }
    return false;
}
