/* SPDX-License-Identifier: MIT */
/*
 * Replays a fuzzer's seed corpus (a directory of files, or single files)
 * through its LLVMFuzzerTestOneInput(), so that every normal test run, and
 * the sanitizer run in particular, exercises what the fuzzer found.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
        FILE *f = fopen(path, "rb");
        uint8_t *buf;
        long n;

        if (!f) {
                perror(path);
                return -1;
        }
        if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
                fclose(f);
                return -1;
        }
        buf = malloc((size_t) n + 1);
        if (!buf || fread(buf, 1, (size_t) n, f) != (size_t) n) {
                free(buf);
                fclose(f);
                return -1;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t) n);
        free(buf);
        return 0;
}

static int cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int main(int argc, char *argv[]) {
        unsigned count = 0, failed = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        perror(argv[i]);
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        failed += replay_file(argv[i]) < 0;
                        count++;
                        continue;
                }
                DIR *d = opendir(argv[i]);
                struct dirent *de;
                char **names = NULL;
                size_t n = 0;
                while (d && (de = readdir(d))) {
                        if (de->d_name[0] == '.')
                                continue;
                        names = realloc(names, sizeof(char *) * (n + 1));
                        if (!names)
                                return 1;
                        names[n++] = strdup(de->d_name);
                }
                if (d)
                        closedir(d);
                qsort(names, n, sizeof(char *), cmp);
                for (size_t j = 0; j < n; j++) {
                        char path[4096];
                        snprintf(path, sizeof path, "%s/%s", argv[i], names[j]);
                        failed += replay_file(path) < 0;
                        count++;
                        free(names[j]);
                }
                free(names);
        }
        printf("replayed %u input(s), %u unreadable\n", count, failed);
        if (count == 0) {
                fprintf(stderr, "no corpus files found\n");
                return 1;
        }
        return failed ? 1 : 0;
}
