/* must not compile: util sees no layer above it */
#include "codec/offset.h"
