/* must compile: the composition root sees every layer */
#include "server/webhook.h"
#include "http/transport.h"
