/* noop: returns 0 at once; measures the whole-process cost of a VM run. */
#include "rt.h"

int main(void) { return 0; }
