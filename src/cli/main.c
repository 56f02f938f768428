/* Placeholder entry point, replaced by the command-line program. */
int main(void) { return 0; }
