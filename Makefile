# Convenience front end over CMake.  The two commands a newcomer needs:
#   make demo   set up, build, simulate a Josephson comparison, replay it into qes-results.db
#   make test   set up, build, run the whole test suite (Criterion via ctest)
BUILD ?= build
CMAKE_FLAGS ?=
JOBS ?= 2
QES := $(BUILD)/pipeline/qes

.PHONY: all deps configure build demo test install format format-check clean

all: build

deps:
	@sh scripts/deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

configure: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	$(QES) simulate configs/demo.ini --out $(BUILD)/demo
	$(QES) replay $(BUILD)/demo.sigmf-meta -o qes-results.db

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

install: build
	cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
