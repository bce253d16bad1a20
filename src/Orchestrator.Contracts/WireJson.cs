using System.Text.Json;
using System.Text.Json.Serialization;

namespace Orchestrator.Contracts;

/// <summary>
/// How the HTTP API's bodies are written and read, by the API and the CLI alike: camelCase names, enums by name, and a
/// number must be a JSON number (the web defaults would read "1" as 1; see also the API's StrictJson).
/// </summary>
public static class WireJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
        WriteIndented = false,
        NumberHandling = JsonNumberHandling.Strict,
    };
}
