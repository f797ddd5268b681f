/* must compile: the API sees core, the request interface and the app */
#include "api/app.h"
#include "core/turn.h"
