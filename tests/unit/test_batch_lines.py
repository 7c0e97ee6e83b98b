"""A batch's manifest read line by line: each line a request with the batch's defaults under it, or the
line's errors naming the field; the task id a line gets is the same however often it is read."""

from __future__ import annotations

import io

from i2v.batches import Line, line_task_id, lines

IMAGE = "https://media.example/a.png"


def read(text: str, fmt: str = "jsonl", **defaults: object) -> list[Line]:
    return list(lines(io.StringIO(text), fmt, defaults))


def test_a_jsonl_line_is_a_request_over_the_batch_defaults_with_its_custom_id() -> None:
    [line] = read(f'{{"custom_id": "sku-1", "image_url": "{IMAGE}", "duration": 3}}\n', prompt="slow pan")
    assert (line.number, line.custom_id, line.errors) == (1, "sku-1", [])
    assert line.request is not None
    assert (line.request.prompt, line.request.duration, line.request.image_url) == ("slow pan", 3, IMAGE)


def test_a_line_overrides_a_default_it_sets_itself() -> None:
    [line] = read(f'{{"image_url": "{IMAGE}", "prompt": "zoom"}}', prompt="slow pan")
    assert line.request is not None
    assert line.request.prompt == "zoom"


def test_bad_lines_name_their_number_and_field_and_the_good_ones_stand() -> None:
    text = "\n".join(
        [
            f'{{"image_url": "{IMAGE}"}}',
            f'{{"image_url": "{IMAGE}", "duration": 99}}',
            "not json",
            "",  # blank: no line of the batch, but line 4 of the file
            "[1, 2]",
            f'{{"image_url": "{IMAGE}", "colour": "blue"}}',
            f'{{"image_url": "{IMAGE}", "custom_id": "{"x" * 65}"}}',
        ]
    )
    got = read(text)
    assert [line.number for line in got] == [1, 2, 3, 5, 6, 7]
    assert got[0].request is not None
    assert got[0].errors == []
    assert [(e.field, "15" in e.message) for e in got[1].errors] == [("duration", True)]
    assert got[2].errors[0].field == "line"
    assert got[2].errors[0].message.startswith("is not JSON")
    assert got[3].errors[0].message == 'must be one JSON object, like {"prompt": "..."}'
    assert [e.field for e in got[4].errors] == ["colour"]
    assert [e.field for e in got[5].errors] == ["custom_id"]
    assert all(line.request is None for line in got[1:])


def test_a_csv_row_is_a_request_with_metadata_columns_a_provider_list_and_files_beside_the_manifest() -> None:
    text = (
        "custom_id,image_url,prompt,duration,provider,metadata.sku\n"
        'a,photos/Été 1.png,,4,"oxen, novita",SKU-1\n'
        f"b,{IMAGE},wave,,,\n"
    )
    first, second = list(lines(io.StringIO(text), "csv", {"prompt": "slow pan"}, "s3://bucket/inputs/t/"))
    assert (first.number, first.custom_id, first.errors) == (2, "a", [])
    assert first.request is not None
    assert first.request.image_url == "s3://bucket/inputs/t/photos/%C3%89t%C3%A9%201.png"
    assert (first.request.prompt, first.request.duration) == ("slow pan", 4)
    assert first.request.provider == ["oxen", "novita"]
    assert first.request.metadata == {"sku": "SKU-1"}
    assert second.request is not None
    assert (second.number, second.request.image_url, second.request.prompt) == (3, IMAGE, "wave")


def test_a_csv_row_with_more_cells_than_columns_is_refused_by_line() -> None:
    [line] = list(lines(io.StringIO(f"image_url\n{IMAGE},extra\n"), "csv", {}))
    assert (line.number, [e.field for e in line.errors]) == (2, ["line"])


def test_a_lines_task_id_is_derived_from_the_batch_and_the_line() -> None:
    assert line_task_id("bat_1", 7) == line_task_id("bat_1", 7)
    assert len({line_task_id("bat_1", 7), line_task_id("bat_1", 8), line_task_id("bat_2", 7)}) == 3
    assert line_task_id("bat_1", 7).startswith("vid_")
    assert len(line_task_id("bat_1", 7)) == len("vid_") + 22
