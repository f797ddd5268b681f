/* must compile: the store sees its interface, the SQLite backend and codec limits */
#include "store/store.h"
#include "store/sqlite/store_sqlite.h"
#include <sqlite3.h>
