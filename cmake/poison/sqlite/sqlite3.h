/*
 * sqlite3.h (poisoned) — SQLite is private to the store layer.
 *
 * This directory comes first on the include path of every layer but the
 * store's own sources (CMakeLists.txt, "Layers"), so a file outside
 * src/store/ that includes <sqlite3.h> stops here. Use store/store.h: the
 * store interface is backend-agnostic. A test of the SQLite backend itself
 * (tests/unit/test_writer.c's fault VFS) opts in by defining
 * PARLEY_SQLITE_BACKEND_TEST, and gets the real header.
 */
#ifdef PARLEY_SQLITE_BACKEND_TEST
#include_next <sqlite3.h>
#else
#error "sqlite3.h is private to the store layer (src/store/sqlite/): use store/store.h"
#endif
