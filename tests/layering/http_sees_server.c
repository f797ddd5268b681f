/* must not compile: the transport sees nothing of the server that composes it */
#include "server/webhook.h"
