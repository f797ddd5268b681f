/* must compile: a codec sees util */
#include "codec/offset.h"
#include "util/buf.h"
