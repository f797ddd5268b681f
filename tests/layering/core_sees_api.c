/* must not compile: core rules see no request, app or hub */
#include "api/request.h"
