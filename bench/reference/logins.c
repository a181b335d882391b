/* The reference for the DB login benchmark: N logins through libpq or MariaDB Connector/C,
 * each one connect (TLS with verification when a CA file is given), `SELECT 1`, close, in one
 * warm process, as the rotator's logins are measured. Prints one JSON array of milliseconds.
 *
 * usage: logins pg|mariadb N HOST PORT USER PASSWORD DBNAME CA_FILE|-
 */
#include <libpq-fe.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int pg_login(char **argv, const char *ca) {
    const char *keys[] = {"host", "port", "user", "password", "dbname", "sslmode", "sslrootcert",
                          "connect_timeout", NULL};
    const char *vals[] = {argv[3], argv[4], argv[5], argv[6], argv[7],
                          ca ? "verify-full" : "disable", ca ? ca : "", "5", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "libpq: %s", PQerrorMessage(c));
        PQfinish(c);
        return 1;
    }
    PGresult *r = PQexec(c, "SELECT 1");
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    PQfinish(c);
    return !ok;
}

static int mariadb_login(char **argv, const char *ca) {
    MYSQL *m = mysql_init(NULL);
    unsigned int timeout = 5;
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    if (ca) {
        my_bool verify = 1;
        mysql_options(m, MYSQL_OPT_SSL_CA, ca);
        mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
    }
    const char *db = strcmp(argv[7], "-") ? argv[7] : NULL;
    if (!mysql_real_connect(m, argv[3], argv[5], argv[6], db, atoi(argv[4]), NULL, 0)) {
        fprintf(stderr, "mariadb: %s\n", mysql_error(m));
        mysql_close(m);
        return 1;
    }
    if (ca && !mysql_get_ssl_cipher(m)) {
        fprintf(stderr, "mariadb: no TLS\n");
        mysql_close(m);
        return 1;
    }
    int failed = mysql_query(m, "SELECT 1");
    if (!failed) mysql_free_result(mysql_store_result(m));
    mysql_close(m);
    return failed;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: logins pg|mariadb N HOST PORT USER PASSWORD DBNAME CA_FILE|-\n");
        return 2;
    }
    const char *ca = strcmp(argv[8], "-") ? argv[8] : NULL;
    int pg = !strcmp(argv[1], "pg"), n = atoi(argv[2]);
    printf("[");
    for (int i = 0; i < n; i++) {
        double t = now_ms();
        if (pg ? pg_login(argv, ca) : mariadb_login(argv, ca)) return 1;
        printf("%s%.3f", i ? "," : "", now_ms() - t);
    }
    printf("]\n");
    return 0;
}
