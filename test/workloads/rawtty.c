// rawtty: turn off echo and canonical mode on its terminal (stdin), then print
// "i=N raw=yes" (or "raw=no" once the terminal is back in cooked mode) every 100 ms.
#include <stdio.h>
#include <termios.h>
#include <time.h>

int main(void) {
  struct termios t;
  if (tcgetattr(0, &t)) { perror("tcgetattr"); return 2; }
  t.c_lflag &= ~(ECHO | ICANON);
  if (tcsetattr(0, TCSANOW, &t)) { perror("tcsetattr"); return 2; }
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long i = 1;; i++) {
    struct timespec d = { 0, 100000000 };
    while (nanosleep(&d, &d)) {}
    int raw = !tcgetattr(0, &t) && !(t.c_lflag & (ECHO | ICANON));
    printf("i=%ld raw=%s\r\n", i, raw ? "yes" : "no");
  }
}
