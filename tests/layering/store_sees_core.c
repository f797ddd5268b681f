/* must not compile: the store sees no core rule */
#include "core/stream.h"
