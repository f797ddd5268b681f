/* must not compile: codecs are pure, they see no store */
#include "store/store.h"
