#include "server/aggregator/aggregator.h"
