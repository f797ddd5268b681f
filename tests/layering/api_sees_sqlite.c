/* must not compile: SQLite is private to the store layer */
#include <sqlite3.h>
