// test_sanitized.h — TSD_TEST_SANITIZED is 1 in a sanitizer build (ASan,
// TSan, MSan with gcc or clang), where address-space limits, RSS figures and
// a replaced malloc mean something else.
#pragma once

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TSD_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||     \
    __has_feature(memory_sanitizer)
#define TSD_TEST_SANITIZED 1
#endif
#endif
#ifndef TSD_TEST_SANITIZED
#define TSD_TEST_SANITIZED 0
#endif
