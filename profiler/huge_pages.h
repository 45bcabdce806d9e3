/*
 * huge_pages.h - the analyzer's heap in transparent huge pages (see
 * huge_pages.c for why and how).
 */
#ifndef PROF_HUGE_PAGES_H
#define PROF_HUGE_PAGES_H

/* Call with main's argv before the work that needs much memory (and before
 * launching a program), on a path that takes the same turn again in the
 * second execution: executes mlmem again with glibc's malloc asking for
 * huge pages, or returns (in that second execution, with GLIBC_TUNABLES
 * restored for the programs mlmem launches; or where it is turned off or
 * cannot be done). */
void prof_huge_pages_exec(char **argv);

#endif
