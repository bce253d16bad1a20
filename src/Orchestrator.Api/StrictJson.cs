// The API's JSON bodies are read strictly: what a lenient reader would quietly resolve is refused and named.
using System.Text.Json;

namespace Orchestrator.Api;

/// <summary>
/// What System.Text.Json lets through on its own: a name given twice in one object (the last one wins, so
/// <c>{"name":"a","name":"b"}</c> creates <c>b</c> behind the back of whoever checked the first). Names are compared
/// ignoring case, as the API binds them. Numbers in strings (<c>"vcpus":"1"</c>) are refused by
/// <see cref="OrchestratorApi.Json"/>'s strict number handling.
/// </summary>
public static class StrictJson
{
    /// <summary>
    /// The path (<c>quota.vms</c>, <c>events[2].name</c>) of the first name given twice in one object; null when there is
    /// none, or when the text is not well-formed JSON (the deserializer says what is wrong then).
    /// </summary>
    public static string? FindRepeatedName(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
        // One frame per open object or array: the names seen (objects only), the path to it, and the next index (arrays).
        var frames = new Stack<Frame>();
        string? property = null;
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                    case JsonTokenType.StartArray:
                        var path = frames.Count == 0 ? "" : Child(frames.Peek(), property);
                        frames.Push(new Frame(path, reader.TokenType == JsonTokenType.StartObject ? new HashSet<string>(StringComparer.OrdinalIgnoreCase) : null));
                        property = null;
                        break;
                    case JsonTokenType.EndObject:
                    case JsonTokenType.EndArray:
                        frames.Pop();
                        property = null;
                        break;
                    case JsonTokenType.PropertyName:
                        property = reader.GetString()!;
                        if (!frames.Peek().Names!.Add(property))
                        {
                            return Child(frames.Peek(), property);
                        }

                        break;
                    default:
                        // A value: in an array it takes the next index.
                        if (frames.TryPeek(out var container) && container.Names is null)
                        {
                            container.NextIndex++;
                        }

                        property = null;
                        break;
                }
            }
        }
        catch (JsonException)
        {
            return null;
        }

        return null;
    }

    private static string Child(Frame parent, string? property)
    {
        if (parent.Names is null)
        {
            return $"{parent.Path}[{parent.NextIndex++}]";
        }

        return parent.Path.Length == 0 ? property ?? "" : $"{parent.Path}.{property}";
    }

    private sealed class Frame(string path, HashSet<string>? names)
    {
        public string Path { get; } = path;
        public HashSet<string>? Names { get; } = names;
        public int NextIndex { get; set; }
    }
}
