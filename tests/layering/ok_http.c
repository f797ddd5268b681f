/* must compile: the transport sees the request interface it implements */
#include "http/transport.h"
#include "api/request.h"
