/* must not compile: the API sees the request interface, not the transport */
#include "http/transport.h"
