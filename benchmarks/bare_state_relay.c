/* A reference for benchmarks/state_relay.py: the device-state relay's extra hop, without any capture.
 *
 * bare_state_relay < WRITER_PIPE > READER_PIPE: moves everything from the writer's pipe into the
 * reader's with splice(2) (page references, no copy) until end-of-file. No framing, no records, no
 * event loop: what a relay costs when it keeps nothing, so what the proxy costs beyond it is the capture.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    for (;;) {
        ssize_t n = splice(0, NULL, 1, NULL, 1 << 20, 0);
        if (n < 0) {
            perror("splice");
            return 1;
        }
        if (n == 0) return 0;
    }
}
