/* must compile: core sees the store and the codecs */
#include "core/stream.h"
#include "store/writer.h"
