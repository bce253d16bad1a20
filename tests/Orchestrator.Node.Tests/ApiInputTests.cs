using System.Text;
using Orchestrator.Api;

namespace Orchestrator.Node.Tests;

/// <summary>The API's readers of numbers, durations and JSON, its idempotency store, and the node's lock file, without a node.</summary>
public sealed class ApiInputTests
{
    [Theory]
    [InlineData("99999999d")]
    [InlineData("999999999h")]
    [InlineData("99999999999d")]
    [InlineData("99999999999m")]
    public void A_duration_too_long_for_a_timespan_reads_as_the_longest_one_rather_than_throwing(string text)
    {
        Assert.True(Durations.TryParse(text, out var duration));
        Assert.Equal(TimeSpan.MaxValue, duration);
    }

    [Theory]
    [InlineData("90s", 90)]
    [InlineData("10m", 600)]
    [InlineData("2h", 7200)]
    [InlineData("7d", 604800)]
    public void Durations_read_as_people_write_them(string text, int seconds)
    {
        Assert.True(Durations.TryParse(text, out var duration));
        Assert.Equal(TimeSpan.FromSeconds(seconds), duration);
    }

    [Theory]
    [InlineData("")]
    [InlineData("10")]
    [InlineData("-1m")]
    [InlineData("1w")]
    [InlineData("1.5h")]
    [InlineData("999999999999d")]
    [InlineData("10m\n")]
    public void Malformed_durations_are_refused(string text) => Assert.False(Durations.TryParse(text, out _));

    [Theory]
    [InlineData("""{"name":"a","name":"b"}""", "name")]
    [InlineData("""{"name":"a","Name":"b"}""", "Name")]
    [InlineData("""{"quota":{"vms":1,"vms":2}}""", "quota.vms")]
    [InlineData("""{"labels":{"env":"a"},"selector":{"x":"1","x":"2"}}""", "selector.x")]
    [InlineData("""{"events":["a",{"k":1,"k":2}]}""", "events[1].k")]
    [InlineData("""[{"a":1},{"a":1,"a":2}]""", "[1].a")]
    public void A_name_given_twice_in_one_object_is_found_with_its_path(string json, string path) =>
        Assert.Equal(path, StrictJson.FindRepeatedName(Encoding.UTF8.GetBytes(json)));

    [Theory]
    [InlineData("""{"name":"a","vcpus":1,"labels":{"name":"x"}}""")]
    [InlineData("""[{"a":1},{"a":2}]""")]
    [InlineData("""{"a":{"b":1},"b":{"a":1}}""")]
    [InlineData("{not json")]
    [InlineData("")]
    public void Names_given_once_per_object_or_malformed_text_are_not_reported(string json) =>
        Assert.Null(StrictJson.FindRepeatedName(Encoding.UTF8.GetBytes(json)));

    [Fact]
    public void Only_successful_answers_are_kept_for_retries()
    {
        var cache = new IdempotencyCache();
        foreach (var status in new[] { 400, 403, 404, 409, 422, 500, 503 })
        {
            var (entry, fresh) = cache.Claim($"k{status}", "hash");
            Assert.True(fresh);
            cache.Complete(entry, new IdempotencyCache.StoredResponse(status, "application/problem+json", new byte[100]));
            Assert.True(cache.Claim($"k{status}", "hash").Fresh, $"a {status} answer was kept: the retry would not run again");
        }

        var (created, _) = cache.Claim("created", "hash");
        cache.Complete(created, new IdempotencyCache.StoredResponse(201, "application/json", new byte[100]));
        var (again, freshAgain) = cache.Claim("created", "hash");
        Assert.False(freshAgain);
        Assert.Equal(201, again.Response!.Status);
    }

    [Fact]
    public void The_store_is_bounded_in_entries_and_bytes_and_drops_the_oldest_first()
    {
        var cache = new IdempotencyCache(maxEntries: 100, maxBytes: 64 * 1024);
        for (var i = 0; i < 1000; i++)
        {
            var (entry, _) = cache.Claim($"key{i}", "hash");
            cache.Complete(entry, new IdempotencyCache.StoredResponse(201, "application/json", new byte[1024]));
        }

        Assert.True(cache.Count <= 100, $"{cache.Count} entries kept");
        Assert.True(cache.Bytes <= 64 * 1024, $"{cache.Bytes} bytes kept");
        Assert.True(cache.Claim("key0", "hash").Fresh); // the oldest went
        Assert.False(cache.Claim("key999", "hash").Fresh); // the newest stayed

        var (large, _) = cache.Claim("large", "hash");
        cache.Complete(large, new IdempotencyCache.StoredResponse(201, "application/json", new byte[IdempotencyCache.MaxAnswerBytes + 1]));
        Assert.True(cache.Claim("large", "hash").Fresh);
    }

    [Fact]
    public void Answers_older_than_a_day_are_forgotten()
    {
        var cache = new IdempotencyCache();
        var start = new DateTime(2026, 11, 24, 12, 0, 0, DateTimeKind.Utc);
        var (entry, _) = cache.Claim("k", "hash", start);
        cache.Complete(entry, new IdempotencyCache.StoredResponse(201, null, [1]));
        Assert.False(cache.Claim("k", "hash", start + TimeSpan.FromHours(23)).Fresh);
        Assert.True(cache.Claim("k", "hash", start + IdempotencyCache.KeepFor + TimeSpan.FromSeconds(1)).Fresh);
        Assert.Equal(1, cache.Count);
    }

    [Fact]
    public void The_data_directory_lock_file_is_its_owners_only()
    {
        var data = Directory.CreateTempSubdirectory("orl").FullName;
        try
        {
            using (var held = DataDirectoryLock.TryAcquire(data, out _))
            {
                Assert.NotNull(held);
            }

            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(data, "node.lock")));
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }
}
